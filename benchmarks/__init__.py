"""`make bench`: figures and ratios for devstack and Dockmaster, never pass/fail."""
