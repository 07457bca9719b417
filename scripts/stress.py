"""Find flaky tests the way they show up in CI: the same tests, round after round, on a busy machine.

Each round is a fresh pytest session (its own devstack, as `make test` has) while busy loops keep every
core occupied, so timing assumptions that hold on an idle machine break here first. The rounds' results
are kept under `.stress/` (a JUnit XML and the output of each round); the summary names every test that
failed, in how many rounds, with the first line of its failure. Exit status 1 when any round failed.

    python scripts/stress.py                          # the concurrency-heavy tests, 20 rounds, all cores busy
    python scripts/stress.py --rounds 5 -- tests/e2e  # other tests: pytest arguments after `--`
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / ".stress"
# Tests whose outcome depends on the order in which threads, processes and deliveries interleave.
CONCURRENCY_HEAVY = ["-m", "concurrency"]
BUSY_LOOP = "while True: pass"


@dataclass
class Round:
    number: int
    seconds: float
    passed: int = 0
    failures: dict[str, str] = field(default_factory=dict)  # test id → first line of the failure
    crashed: str = ""  # pytest did not finish, or failed outside the tests

    @property
    def ok(self) -> bool:
        return not self.failures and not self.crashed


@contextlib.contextmanager
def busy_cores(count: int) -> Iterator[None]:
    """`count` processes spinning at normal priority, stopped however the block is left."""
    spinners = [subprocess.Popen([sys.executable, "-c", BUSY_LOOP]) for _ in range(count)]
    try:
        yield
    finally:
        for spinner in spinners:
            spinner.send_signal(signal.SIGKILL)
        for spinner in spinners:
            spinner.wait()


def read_junit(path: Path) -> tuple[int, dict[str, str]]:
    passed, failures = 0, {}
    for case in ET.parse(path).getroot().iter("testcase"):  # noqa: S314  (our own pytest's JUnit file)
        test_id = f"{case.get('classname')}::{case.get('name')}"
        problem = case.find("failure")
        if problem is None:
            problem = case.find("error")
        if problem is not None:
            message = (problem.get("message") or problem.tag).strip()
            failures[test_id] = message.splitlines()[0][:200] if message else problem.tag
        elif case.find("skipped") is None:
            passed += 1
    return passed, failures


def run_round(number: int, pytest_args: list[str]) -> Round:
    junit, output = RESULTS / f"round-{number:02d}.xml", RESULTS / f"round-{number:02d}.log"
    started = time.monotonic()
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={junit}"]
    with (
        open(output, "wb") as out,
        subprocess.Popen([*command, *pytest_args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT) as tests,
    ):
        try:
            tests.wait()
        except KeyboardInterrupt:
            # Stopped as Ctrl-C stops pytest, so that its fixtures' teardown stops the round's devstack
            # (subprocess.run would SIGKILL it and leave the services running).
            tests.send_signal(signal.SIGINT)
            tests.wait()
            raise
    result = Round(number, time.monotonic() - started)
    if not junit.exists():
        result.crashed = f"no results; see {output.relative_to(ROOT)}"
        return result
    result.passed, result.failures = read_junit(junit)
    if tests.returncode != 0 and not result.failures:
        # Every test passed, yet pytest failed (a warning turned error at session end, say): CI would too.
        result.crashed = f"pytest exited {tests.returncode}; see {output.relative_to(ROOT)}"
    return result


def summary(rounds: list[Round], load: int) -> str:
    failed = collections.Counter(test for r in rounds for test in r.failures)
    lines = [
        f"{len(rounds)} rounds with {load} busy loop(s) on {os.cpu_count()} core(s): "
        f"{sum(r.ok for r in rounds)} clean, {sum(not r.ok for r in rounds)} with failures",
        "round  seconds  passed  failed",
        *(f"{r.number:>5}  {r.seconds:>7.1f}  {r.passed:>6}  {r.crashed or len(r.failures)}" for r in rounds),
    ]
    for test, count in failed.most_common():
        first = next(r.failures[test] for r in rounds if test in r.failures)
        lines.append(f"FLAKY {count}/{len(rounds)} {test}: {first}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument(
        "--load", type=int, default=os.cpu_count() or 1, help="busy loops (default: one a core)"
    )
    parser.add_argument("pytest_args", nargs="*", help="after --: what pytest runs (default: -m concurrency)")
    options = parser.parse_args()
    # Started in the background, a shell ignores SIGINT for us and our children would inherit that; with
    # a handler here they start with the default again, and SIGTERM stops a round as Ctrl-C does.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    pytest_args = options.pytest_args or CONCURRENCY_HEAVY
    shutil.rmtree(RESULTS, ignore_errors=True)
    RESULTS.mkdir()
    rounds: list[Round] = []
    interrupted = False
    with busy_cores(options.load):
        try:
            for number in range(1, options.rounds + 1):
                rounds.append(run_round(number, pytest_args))
                last = rounds[-1]
                state = "ok" if last.ok else f"FAILED {', '.join(last.failures) or last.crashed}"
                print(
                    f"round {number}/{options.rounds}: {last.passed} passed in {last.seconds:.0f} s, {state}",
                    flush=True,
                )
        except KeyboardInterrupt:
            interrupted = True
            print(f"interrupted in round {len(rounds) + 1}; the rounds before it:", flush=True)
    report = summary(rounds, options.load)
    (RESULTS / "summary.txt").write_text(report + "\n")
    print(report)
    if interrupted:
        return 130
    return 0 if all(r.ok for r in rounds) else 1


if __name__ == "__main__":
    sys.exit(main())
