"""What the tests share: builders and helpers by subject, and the fixtures' plugins (fixtures_*.py).

Test modules and conftests import from here, never from each other; modules here import only each other.
"""
