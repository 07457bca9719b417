"""The Azure REST APIs Dockmaster uses, served over HTTPS for the unmodified Azure SDK clients."""
