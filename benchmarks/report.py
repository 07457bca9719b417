"""`make bench`: run every benchmark, print its figures, and write benchmarks/REPORT.md and its plots.

Each benchmark is a module printing figures; the report keeps them with their method, the machine
and the time, so a reader can compare runs. Its `SUMMARY` lines become the table the report opens with,
and the raw samples it saves (in a temporary directory) become the plots. Nothing here passes or fails
on a number.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks import plots
from benchmarks.summary import DATA_ENV, parse

REPORT = Path(__file__).with_name("REPORT.md")
# Plots drawn after a module ran: (module, draw(data directory, output) -> written or None, file, caption).
PLOTS: list[tuple[str, Callable[[Path, Path], Path | None], str, str]] = [
    (
        "benchmarks.chain",
        plots.push_to_verdict,
        "push-to-verdict.png",
        "push → stored verdict: distribution and CDF (median solid, p95 dashed)",
    ),
    (
        "benchmarks.cleanup",
        plots.cleanup_plan_time,
        "cleanup-plan-time.png",
        "cleanup plan time against the number of resource groups",
    ),
    (
        "benchmarks.scale",
        plots.emulator_scale,
        "emulator-scale.png",
        "the emulator's cost of one request as the subscription grows, and cleanup's plan time",
    ),
]
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
        "a burst of 1,000 ImagePushed events (30% duplicates, shuffled) through the verifier with 8 workers, "
        "counting the verdicts of the burst's 700 digests. One tag of a repository topped up to 1,000 tags: "
        "our verifier's handle_event (no smoke run, warm, the verdict deleted before each of 7 rounds so it "
        "is verified again; the verdict's Table writes included) against `skopeo inspect "
        "docker://LOGIN_SERVER/repo:tag` on the registry front (a fresh process each of 7 rounds, logged in "
        "with the admin user through `--creds`, the devstack CA through `--cert-dir`; with and without "
        "`--no-tags`) and against a naive tag → digest check listing every tag through /acr/v1/…/_tags "
        "(pages of 100 following `Link`, token fetched once); registry requests counted at the emulator "
        "(/_devstack/stats) for one run of each. `import function_app` against `import azure.functions` and "
        "against eager imports of what the app defers (FastAPI and the API, the services, the identity, "
        "Tables, Queues, Event Grid and management SDKs): median of 7 fresh interpreters, peak RSS from "
        "VmHWM.",
    ),
    (
        "benchmarks.chain",
        "Push → event → verdict",
        "Manifest PUTs through the registry front, one at a time, each a distinct manifest, timed from "
        "sending the PUT (docker-registry notifies while it answers, so an event can arrive before the "
        "PUT's response): the time until a webhook receives its ImagePushed (120 pushes), and until the "
        "verdict is stored by function_app on the local host through Event Grid (200 pushes, policy "
        "without a smoke run).",
    ),
    (
        "benchmarks.api",
        "HTTP API and the page: tag listing and verdict lookup",
        "function_app on devstack's local Functions host (roles off); 5,000 tags on one manifest PUT "
        "straight to docker-registry; GET …/tags paged n=100 through all of them (per-page p50/p95 and "
        "whole-listing time, emulator requests per page), then sequential and 8-client requests/s and "
        "p50/p95 of the first tags page and of GET …/verdicts. Then the page's tags view in headless "
        "chromium (benchmarks/page.py): the first page and the page after 4,900 tags, a fresh load and "
        "a hop by the page's own link, median of 10, against the API's first-page answer time.",
    ),
    (
        "benchmarks.cleanup",
        "Cleanup",
        "The pure planner over 10,000 generated groups, and at 1,000 to 20,000 (median of 5 each); "
        "listing and planning 1,000 groups through the emulator, with ARM pages and requests counted, and "
        "a whole plan (median of 3) as the subscription grows from 100 to 2,000 groups (one in ten a lab); "
        "then 10,000 more groups with 500 stale labs: a plan, and one run deleting them all.",
    ),
    (
        "benchmarks.scale",
        "Scale: the emulator as it fills, cleanup's plan against a per-candidate peer",
        "One subscription grown to 100, 1,000, 10,000 and 50,000 groups (one in twenty a stale lab, one "
        "stale lab in ten locked). At each size the median of 50 keep-alive requests: one group GET, the "
        "first and the next page of the group listing, its first page filtered by a tag one group in "
        "twenty has and by a tag none has, the first page of the subscription's lock listing, "
        "one group's lock listing. At 1,000, 10,000 and 50,000: a whole cleanup plan (every group listed) "
        "by our page-wise survey (group pages + the subscription's lock pages, read concurrently) and by "
        "a peer reading one lock listing per candidate lab (8 at a time, as the previous code; Cloud "
        "Custodian's `resource-lock` filter does the same, 3 at a time), each without and with 50 ms added "
        "to every ARM request by the fault API; ARM requests counted by the clients.",
    ),
    (
        "benchmarks.retention",
        "Retention: a plan of 10,000 tags",
        "One repository seeded straight into docker-registry (a shared small config and layer, 10,000 "
        "distinct manifests each under a semantic-version tag); a retention plan for it through the registry "
        "front with the product's RegistryClient (tag and manifest listings in pages of 100, the candidates' "
        "manifests read for `subject` up to the cap of 100), median of 3 with a fresh client each; registry "
        "requests counted by the client; the pure planner alone on the same state, median of 5.",
    ),
    (
        "benchmarks.soak",
        "Soak: 20 pushes/s for 5 minutes",
        "function_app on devstack's local Functions host, wired to the registry through Event Grid; 20 "
        "manifest PUTs a second for 5 minutes from 4 pushers, every 20th to a repository whose rule runs a "
        "smoke run (ACR Tasks → podman); verdicts watched in Table storage once a second, memory of the "
        "host and the emulator and the run queue's depth every 5 s. Fails (and says which) when a verdict "
        "is missing 120 s after the last push, memory grows more than 50 MiB after the first 30 s, the run "
        "queue holds more than 100 messages or the last minute's p95 passes twice the first's.",
    ),
]


def cell(text: str) -> str:
    return text.replace("|", "\\|") or "—"


def run(module: str, data: Path) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    env = {**os.environ, DATA_ENV: str(data)}
    command = [sys.executable, "-m", module]
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    return result, time.monotonic() - started


def main() -> int:
    sections, rows = [], []
    failures = 0
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="dockmaster-bench-data-") as raw:
        data = Path(raw)
        for module, title, method in BENCHMARKS:
            print(f"== {title} ({module})", flush=True)
            result, elapsed = run(module, data)
            lines = []
            for line in result.stdout.strip().splitlines():
                row = parse(line)
                if row is None:
                    lines.append(line)
                else:
                    rows.append(row)
            figures = "\n".join(lines)
            print(figures, flush=True)
            if result.returncode != 0:
                failures += 1
                figures += (
                    f"\n\n(the benchmark failed with exit status {result.returncode})\n"
                    f"{result.stderr[-2000:]}"
                )
                print(result.stderr[-2000:], file=sys.stderr)
            pictures = []
            for plotted, draw, name, caption in PLOTS:
                if plotted == module and draw(data, REPORT.with_name(name)):
                    pictures.append(f"![{caption}]({name})\n")
                    print(f"plot written to {REPORT.with_name(name)}", flush=True)
            sections.append(
                f"## {title}\n\n{method}\n\n```\n{figures}\n```\n\n"
                + "".join(f"{picture}\n" for picture in pictures)
                + f"_{elapsed:.0f} s, `python -m {module}`_\n"
            )
    table = ["| figure | ours | peer | ratio / notes |", "|---|---|---|---|"]
    table += [f"| {' | '.join(cell(field) for field in row)} |" for row in rows]
    before, after = load_before[0], os.getloadavg()[0]
    header = (
        "# Dockmaster benchmark report\n\n"
        f"Written by `make bench` on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC; "
        f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        "Figures come from devstack on one machine: the services under test and the load share its cores "
        f"(1-minute load average {before:.1f} before the run, {after:.1f} after: other work on the machine "
        "shows there).\n\n## Summary\n\n" + "\n".join(table) + "\n\n"
    )
    REPORT.write_text(header + "\n".join(sections))
    print(f"report written to {REPORT}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
