"""Trigger blueprints: each body parses its input, calls shared/, and maps the result."""
