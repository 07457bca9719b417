"""`python -m devstack.emulator CONFIG.json`: serve the emulator in the foreground."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from ..redact import redact_logs
from .app import serve
from .config import EmulatorConfig


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.emulator")
    parser.add_argument("config", type=Path, help="the emulator.json written by `python -m devstack up`")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    config = EmulatorConfig.load(args.config)
    storage_key = dict(
        part.split("=", 1) for part in config.storage_connection_string.split(";") if "=" in part
    ).get("AccountKey", "")
    redact_logs([config.identity_header, config.signing_key, storage_key])
    serve(config)


if __name__ == "__main__":
    main()
