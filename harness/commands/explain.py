"""``cachewright explain``: what the compiled configurations do with one request.

The model and its text live in ``harness.selection`` (``explain``, ``explain_text``), each engine's
internals (what ``-v`` adds) in ``harness.engines.explain``; this module parses the command line
and runs them. Its imports are inside ``run``, so that listing the commands stays fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from .. import ui
from . import HELP, common


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``explain`` on the ``cachewright`` subparsers."""
    p = sub.add_parser(
        "explain", help=HELP["explain"],
        description="Explain one request: the rule that matches (first match), whether it is "
                    "looked up and stored and for how long (or why not), the cache key, what "
                    "the origin receives, and how nginx and Varnish implement it. Computed from "
                    "the same lowering the compiler uses; no engine is run.",
        epilog="examples:\n  cachewright explain policy.yaml GET /products/1\n"
               "  cachewright explain policy.yaml GET /products/1?utm_source=x -H 'Cookie: a=b'\n"
               "  cachewright explain policy.yaml GET /v1/me -H 'Authorization: Bearer t'\n"
               "  cachewright explain policy.yaml POST /cart --host shop.example.com "
               "--scheme https --json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("policy", type=Path, help="policy YAML file")
    p.add_argument("method", help="request method (GET, POST, PURGE, ...)")
    p.add_argument("target", metavar="PATH", help="request target: raw path and optional ?query")
    p.add_argument("-H", "--header", action="append", default=[], metavar="'NAME: VALUE'",
                   help="a request header (repeatable); Cookie and Host are understood")
    p.add_argument("--host", help="the Host (default: a Host header, else the policy's first "
                                  "listen.hosts entry, else cachewright.test)")
    p.add_argument("--scheme", choices=("http", "https"),
                   help="the listener the request arrives on (default: https when the policy "
                        "redirects plain HTTP or only serves HTTPS, else http)")
    p.add_argument("--json", action="store_true",
                   help="print the explanation as JSON (everything, engine internals included)")
    # Also after the subcommand (cachewright's own -q/-v come before it); SUPPRESS keeps an
    # earlier `cachewright -v explain ...` from being reset by this parser's default.
    volume = p.add_mutually_exclusive_group()
    volume.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="the decision only: rule, cached or why not, TTL")
    volume.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                        help="also each engine's internals: nginx's dispatch map and location, "
                             "the Varnish VCL's variables and subroutines")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Explain the request; exit 2 on a malformed request."""
    import json
    import sys

    from cachewright.generator.errors import UsageError
    from cachewright.generator.load import load

    from ..engines.explain import explain
    from ..selection.explain import build_request, default_scheme, serves
    from ..selection.explain_text import render

    policy = load(args.policy)
    common.warn(policy.warnings)
    scheme = args.scheme or default_scheme(policy)
    try:
        request = build_request(policy, args.method, args.target, args.header, args.host)
        if not serves(policy, scheme):
            raise UsageError(f"the policy does not listen on {scheme} (see listen)")
    except UsageError as exc:
        print(f"cachewright explain: {exc}", file=sys.stderr)
        return 2
    result = explain(policy, request, scheme)
    print(json.dumps(result.to_json(), indent=2) if args.json else render(result, _level(args)))
    return 0


def _level(args: argparse.Namespace) -> int:
    """-q / -v given after ``explain`` (the same names as cachewright's own, which set ui.level)."""

    if getattr(args, "quiet", False):
        return ui.QUIET
    return ui.VERBOSE if getattr(args, "verbose", False) else ui.level
