"""``cachewright serve``: keep origin + engine(s) up, print their URLs, stop cleanly on Ctrl-C."""

from __future__ import annotations

import argparse
import json
import sys
import threading
from pathlib import Path
from typing import Any

from generator.load import load

from ..api import Stack
from ..procs import Terminated
from . import test


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "serve", help="keep the sample origin and the engine(s) running for curl and friends",
        epilog="examples:\n  cachewright serve examples/shop/policy.yaml --engine varnish\n"
               "  curl -si -H 'Host: shop.example.com' http://127.0.0.1:PORT/products/1",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path, help="policy YAML file")
    test.add_run_options(p)
    p.add_argument("--json", action="store_true", help="print the URLs as one JSON line")
    p.set_defaults(run=run)


def describe(stack: Stack) -> dict[str, Any]:
    """The URLs of a running stack."""
    engines = {}
    for name, endpoint in stack.endpoints.items():
        urls = {"http": endpoint.url("http")} if endpoint.http_port else {}
        if endpoint.https_port:
            urls["https"] = endpoint.url("https")
        engines[name] = urls
    return {"origin": {"data": stack.origin.data_url, "control": stack.origin.control_url},
            "engines": engines, "ca_file": str(stack.ca_file) if stack.ca_file else None}


def run(args: argparse.Namespace) -> int:
    policy = load(args.policy)
    with test.runtime(args).start(policy, test.engines(args), args.origin) as stack:
        info = describe(stack)
        if args.json:
            print(json.dumps(info), flush=True)
        else:
            _print(info)
        try:
            threading.Event().wait()
        except (KeyboardInterrupt, Terminated):
            print("stopping", file=sys.stderr)
    return 0


def _print(info: dict[str, Any]) -> None:
    for name, urls in info["engines"].items():
        for scheme, url in urls.items():
            print(f"{name:8} {scheme:5} {url}")
    print(f"origin   data  {info['origin']['data']}")
    if info["origin"]["control"]:
        print(f"origin   ctl   {info['origin']['control']}")
    if info["ca_file"]:
        print(f"CA file        {info['ca_file']}")
    print("Ctrl-C stops everything.", flush=True)
