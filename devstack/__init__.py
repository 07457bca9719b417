"""devstack: Azure APIs Dockmaster calls, emulated on one machine, plus a real build/run executor."""
