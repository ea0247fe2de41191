"""The origin's command line: ``python -m cachewright.harness.origin`` (stdlib only).

``python -m cachewright.harness.origin [--host H] [--data-port N] [--control-port M] [--log-json]
[--log-size N] [--surrogate-key-header NAME]``. Port 0 picks a free port. When both listeners
are up it prints one JSON line to stdout: ``{"event": "ready", "host": ..., "data_port": N,
"control_port": M, "pid": P}``. SIGTERM and SIGINT stop it cleanly (exit status 0). With
``--log-json`` each data request is logged to stderr as one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence

from .runner import serve
from .server import DEFAULT_SURROGATE_KEY_HEADER, Origin, OriginConfig


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m cachewright.harness.origin",
        description="cachewright's programmable sample origin",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--data-port", type=int, default=0, help="data port (0: pick a free one)")
    parser.add_argument("--control-port", type=int, default=0, help="control port (0: free)")
    parser.add_argument("--log-json", action="store_true", help="log each request to stderr")
    parser.add_argument("--log-size", type=int, default=1000, help="requests kept in the log")
    parser.add_argument(
        "--surrogate-key-header",
        default=DEFAULT_SURROGATE_KEY_HEADER,
        help="header carrying a rule's surrogate keys (default Surrogate-Key)",
    )
    return parser.parse_args(argv)


def _announce(origin: Origin) -> None:
    line = {
        "event": "ready",
        "host": origin.config.host,
        "data_port": origin.data_port,
        "control_port": origin.control_port,
        "pid": os.getpid(),
    }
    print(json.dumps(line), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m cachewright.harness.origin``; returns the exit status."""
    args = _parse_args(argv)
    config = OriginConfig(
        host=args.host,
        data_port=args.data_port,
        control_port=args.control_port,
        log_json=args.log_json,
        log_size=args.log_size,
        surrogate_key_header=args.surrogate_key_header,
    )
    try:
        asyncio.run(serve(config, _announce))
    except OSError as exc:
        print(f"origin: cannot listen on {config.host}: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
