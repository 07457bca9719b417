"""`make bench`: run every benchmark, print its figures, and write benchmarks/REPORT.md.

Each benchmark is a module printing figures; the report keeps them with their method, the machine
and the time, so a reader can compare runs. Nothing here passes or fails on a number.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPORT = Path(__file__).with_name("REPORT.md")
BENCHMARKS = [
    (
        "benchmarks",
        "devstack",
        "The AZ-204 ACR exercise end to end through the SDK clients; the executor's overhead: the median of "
        "7 runs of one image by digest through ACR Tasks (schedule → Succeeded) against a bare `podman run` "
        "of the same image; resource-group GETs per second with 4 keep-alive clients for 5 s; the requests "
        "azure-containerregistry makes to list 1,000 tags; a 256 MiB blob upload through the registry front "
        "against one straight to docker-registry.",
    ),
    (
        "benchmarks.verification",
        "Verification",
        "Registry requests per verification (no smoke run, warm), counted at the emulator over 50 images; "
        "a burst of 1,000 ImagePushed events (30% duplicates, shuffled) through the verifier with 8 workers; "
        "`import function_app` against `import azure.functions` (median of 7 fresh interpreters).",
    ),
    (
        "benchmarks.chain",
        "Push → event → verdict",
        "Manifest PUTs through the registry front, one at a time, each a distinct manifest: the time until a "
        "webhook receives its ImagePushed (120 pushes), and until the verdict is stored by function_app on "
        "the local host through Event Grid (200 pushes, policy without a smoke run).",
    ),
    (
        "benchmarks.api",
        "HTTP API: tag listing and verdict lookup",
        "function_app on devstack's local Functions host (roles off); 5,000 tags on one manifest PUT "
        "straight to docker-registry; GET …/tags paged n=100 through all of them (per-page p50/p95 and "
        "whole-listing time, emulator requests per page), then sequential and 8-client requests/s and "
        "p50/p95 of the first tags page and of GET …/verdicts.",
    ),
    (
        "benchmarks.cleanup",
        "Cleanup",
        "The pure planner over 10,000 generated groups; listing and planning 1,000 groups through the "
        "emulator, with ARM pages and requests counted.",
    ),
]


def main() -> int:
    sections = []
    failures = 0
    for module, title, method in BENCHMARKS:
        print(f"== {title} ({module})", flush=True)
        started = time.monotonic()
        result = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
        figures = result.stdout.strip()
        print(figures, flush=True)
        if result.returncode != 0:
            failures += 1
            figures += (
                f"\n\n(the benchmark failed with exit status {result.returncode})\n{result.stderr[-2000:]}"
            )
            print(result.stderr[-2000:], file=sys.stderr)
        sections.append(
            f"## {title}\n\n{method}\n\n```\n{figures}\n```\n\n_{elapsed:.0f} s, `python -m {module}`_\n"
        )
    header = (
        "# Dockmaster benchmark report\n\n"
        f"Written by `make bench` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Figures come from devstack on one machine: the services under test and the load share its cores.\n\n"
    )
    REPORT.write_text(header + "\n".join(sections))
    print(f"report written to {REPORT}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
