"""Build contexts: Debian's static busybox in a FROM-scratch image."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

BUSYBOX = Path("/bin/busybox")


def image_context(tmp_path: Path, hello_context: Path, entrypoint: str) -> Path:
    """A context of its own under `tmp_path`: hello_context's busybox with another entrypoint."""
    context = tmp_path / uuid.uuid4().hex
    context.mkdir()
    shutil.copy(hello_context / "busybox", context / "busybox")  # keeps the executable bit
    (context / "Dockerfile").write_text(f"FROM scratch\nCOPY busybox /bin/busybox\nENTRYPOINT {entrypoint}\n")
    return context
