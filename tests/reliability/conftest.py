"""The reliability tests reuse the integration tests' fixtures: the in-process verifier, the cleanup env."""

from tests.integration.test_cleanup import env  # noqa: F401  (fixtures, re-exported)
from tests.integration.test_verification import verifier  # noqa: F401
