"""Dockmaster's application code: plain Python, importable without the Functions host."""
