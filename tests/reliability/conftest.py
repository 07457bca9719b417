"""The reliability tests drive the same in-process verifier as the integration tests."""

from tests.integration.test_verification import verifier  # noqa: F401  (a fixture, re-exported)
