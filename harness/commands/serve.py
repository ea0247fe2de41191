"""``cachewright serve``: keep origin + engine(s) up, print their URLs, stop cleanly on Ctrl-C."""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cachewright.generator.errors import UsageError

from . import HELP, common, test

if TYPE_CHECKING:
    from cachewright.generator.model import Policy

    from ..runtime import ports
    from ..runtime.api import Runtime, Stack


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "serve", help=HELP["serve"],
        description="Start the sample origin (or use --origin) and the engine(s) with the "
                    "policy's configuration, print their URLs, and keep them up until Ctrl-C. "
                    "The first engine listens on the policy's ports (listen.http.port, "
                    "listen.https.port) on 127.0.0.1 when they are free, else on free ports "
                    "(with a note); --port and --https-port choose them (an error when taken); "
                    "other engines listen on free ports.",
        epilog="examples:\n  cachewright serve examples/shop/policy.yaml --engine varnish\n"
               "  cachewright serve policy.yaml --engine nginx --port 8080\n"
               "  curl -si -H 'Host: shop.example.com' http://127.0.0.1:PORT/products/1",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path, help="policy YAML file")
    p.add_argument("--port", type=_port, metavar="PORT",
                   help="plain-HTTP port on 127.0.0.1 for the first engine (default: the policy's "
                        "listen.http.port when free, else a free one)")
    p.add_argument("--https-port", type=_port, metavar="PORT",
                   help="HTTPS port on 127.0.0.1 for the first engine, when the policy serves HTTPS "
                        "(default: listen.https.port when free, else a free one)")
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


def _port(text: str) -> int:
    value = int(text) if text.isdigit() else 0
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{text}: expected a port number from 1 to 65535")
    return value


def run(args: argparse.Namespace) -> int:
    import json

    from cachewright.generator.fleet import not_yet
    from cachewright.generator.load import load

    from ..runtime import ports
    from ..runtime.procs import Terminated

    policy = load(args.policy)
    not_yet(policy, "serve")
    common.warn(policy.warnings)
    selected = test.engines(args)
    _check_port_options(policy, args)
    choice = ports.choose(policy, selected, args.port, args.https_port)
    for note in choice.notes:
        print(note, file=sys.stderr)
    with runtime(args, choice.fixed).start(policy, selected, args.origin) as stack:
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


def _check_port_options(policy: Policy, args: argparse.Namespace) -> None:
    """--port / --https-port only for a listener the policy has."""
    if args.port is not None and policy.listen.http is None:
        raise UsageError(f"--port {args.port}: the policy serves no plain HTTP (listen.http)")
    if args.https_port is not None and policy.listen.https is None:
        raise UsageError(f"--https-port {args.https_port}: the policy serves no HTTPS (listen.https)")


def runtime(args: argparse.Namespace, fixed: ports.Fixed) -> Runtime:
    """The runtime the options ask for, its first engine listening on the ``fixed`` ports."""
    if args.runtime == "local":
        from ..runtime.local import LocalRuntime

        return LocalRuntime(ports=fixed)
    from ..runtime.docker import DockerRuntime  # needs the docker SDK

    chosen = test.runtime(args)  # the images, network and origin the options name
    if isinstance(chosen, DockerRuntime):
        chosen.ports = dict(fixed)  # the host ports it publishes (as themselves)
    return chosen


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
