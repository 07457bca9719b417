"""Files the tests read."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent
POLICY = TESTS / "data" / "policy.yaml"  # the policy the app runs with in the stack-backed tests
HOSTILE_POLICY = TESTS / "hostile" / "policy.yaml"  # the hostile-input suite's own
