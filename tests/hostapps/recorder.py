"""What a test app saw, appended as JSON lines to the file named by $HOSTAPP_RECORD."""

from __future__ import annotations

import json
import os
import threading
from typing import Any

_lock = threading.Lock()


def record(kind: str, **fields: Any) -> None:
    line = json.dumps({"kind": kind, **fields}, default=str)
    with _lock, open(os.environ["HOSTAPP_RECORD"], "a") as out:
        out.write(line + "\n")
