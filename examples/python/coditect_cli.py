#!/usr/bin/env python3
"""A CLI in the CODITECT shape: it acquires a seat at start-up, runs its command, tells the
user where the license stands (online / offline (grace N days) / degraded), and gives the
seat back at exit, also when the command fails or SIGTERM arrives.

    python examples/python/coditect_cli.py --config host.json run -- echo hello
    python examples/python/coditect_cli.py --config host.json status

host.json is an engine config, e.g. the demo's seat host (examples/demo.sh, step 5):
    {"api-key": "...", "api-url": "http://127.0.0.1:18700", "public-keys": [...],
     "cache-dir": "/tmp/coditect-cache"}
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import subprocess
import sys
from datetime import datetime, timezone
from typing import Any, Optional

import lic4es


def license_line(status: dict[str, Any]) -> str:
    """One line for the user: the tier and how the seat is held."""
    tier = str(status.get("tier", "community")).capitalize()
    seat: Optional[dict[str, Any]] = status.get("seat")
    if seat is None:
        return f"{tier} ({status.get('status', '')})"
    state = seat.get("state")
    if state == "online":
        return f"{tier} - online"
    if state == "offline":
        days = "?"
        until = seat.get("grace_until")
        if until:
            end = datetime.fromisoformat(str(until).replace("Z", "+00:00"))
            left = (end - datetime.now(timezone.utc)).total_seconds() / 86400
            days = str(max(0, int(left)))
        return f"{tier} - offline (grace {days} days)"
    if state == "degraded":
        return f"{tier} - degraded (offline grace expired)"
    return f"{tier} - {state}: {status.get('reason', '')}"


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", required=True, help="engine config (JSON file)")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("status", help="show the license and the seat")
    run = sub.add_parser("run", help="run a command while holding the seat")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(levelname)s: %(message)s")
    # SIGTERM as a normal exit, so the seat is given back (the with block's exit).
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with open(args.config, encoding="utf-8") as f:
        config = json.load(f)

    with lic4es.Engine(config) as engine:
        status = engine.status()
        print(f"license: {license_line(status)}")
        if args.command == "status":
            print(json.dumps(status.get("seat"), indent=2))
            return 0
        if engine.current_tier() < lic4es.Tier.PRO:
            print("this command needs Pro or better", file=sys.stderr)
            return 3
        command = [a for a in args.argv if a != "--"]
        return subprocess.call(command) if command else 0


if __name__ == "__main__":
    sys.exit(main())
