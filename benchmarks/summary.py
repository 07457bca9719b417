"""What a benchmark hands to the report besides its human-readable lines.

Benchmarks run as separate processes, so they pass figures on through their output and files:
- `summary(...)` prints one tab-separated `SUMMARY` line; report.py turns them into the opening table and
  keeps them out of the module's section.
- `save_samples(...)` writes raw samples as JSON into `$DOCKMASTER_BENCH_DATA` (a temporary directory
  report.py creates and plots from); a module run on its own, without it, writes nothing.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

PREFIX = "SUMMARY\t"
DATA_ENV = "DOCKMASTER_BENCH_DATA"


def summary(figure: str, ours: str, peer: str = "—", notes: str = "") -> None:
    """One row of the report's opening table: figure | ours | peer | ratio or notes."""
    fields = [figure, ours, peer, notes]
    print(PREFIX + "\t".join(field.replace("\t", " ").replace("\n", " ") for field in fields), flush=True)


def parse(line: str) -> list[str] | None:
    if not line.startswith(PREFIX):
        return None
    fields = line[len(PREFIX) :].split("\t")
    return [*fields, "", "", "", ""][:4]


def save_samples(name: str, data: dict[str, Any]) -> None:
    directory = os.environ.get(DATA_ENV)
    if directory:
        Path(directory, f"{name}.json").write_text(json.dumps(data))
