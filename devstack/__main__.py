"""`python -m devstack up|down|status|run|host`: the local Azure stack Dockmaster runs against."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading

from .stack import StackError, default_home, down, status, up

SECRET_KEYS = {"identityHeader", "storageConnectionString"}


def shown(endpoints: dict[str, object]) -> dict[str, object]:
    """What is safe to print: everything but the identity header and the storage key."""
    return {k: v for k, v in endpoints.items() if k not in SECRET_KEYS}


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack", description=__doc__)
    if sys.argv[1:2] == ["host"]:  # the local Functions host has its own options
        from .host import main as host_main

        return host_main(sys.argv[2:])
    parser.add_argument("command", choices=["up", "down", "status", "run", "demo", "host"])
    args = parser.parse_args()
    home = default_home()
    try:
        if args.command == "up":
            endpoints = up(home)
            print(json.dumps(shown(endpoints), indent=2))
            print(f"\nexport the settings with: . {home}/env")
        elif args.command == "run":
            from .devapp import start

            endpoints = up(home)
            print(json.dumps(shown(endpoints), indent=2))
            try:
                app = start(home, endpoints)
            except BaseException:
                down(home)
                raise
            print(
                f"\nDockmaster runs on {app['host']} (logs: {home}/logs/host.log), verifying pushes to "
                f"{app['loginServer']} (registry {app['registry']}).\n"
                f"Open the page in a browser: {app['page']}\n"
                "Push an image and watch its verdict: python -m devstack demo\n"
                f"Settings for other tools: . {home}/env. Ctrl-C stops everything.",
                flush=True,
            )
            stop = threading.Event()
            for signum in (signal.SIGINT, signal.SIGTERM):
                signal.signal(signum, lambda *_: stop.set())
            stop.wait()
            down(home)
            print("devstack stopped")
        elif args.command == "demo":
            from .devapp import demo

            return demo(home, json.loads((home / "endpoints.json").read_text()))
        elif args.command == "down":
            forced = down(home)
            print("devstack stopped" + (f" (killed: {', '.join(forced)})" if forced else ""))
        else:
            states = status(home)
            if not states:
                print("devstack is not running")
                return 1
            for name, alive in states.items():
                print(f"{name:10} {'running' if alive else 'stopped'}")
            return 0 if all(states.values()) else 1
    except StackError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
