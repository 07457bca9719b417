"""`python -m devstack.emulator CONFIG.json`: serve the emulator in the foreground."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from .app import serve
from .config import EmulatorConfig


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m devstack.emulator")
    parser.add_argument("config", type=Path, help="the emulator.json written by `python -m devstack up`")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    serve(EmulatorConfig.load(args.config))


if __name__ == "__main__":
    main()
