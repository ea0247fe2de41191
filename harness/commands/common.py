"""Arguments and steps shared by several subcommands."""

from __future__ import annotations

import argparse
import sys

from cachewright.generator.model import Policy
from cachewright.generator.pipeline import TARGETS, Options

from ..engines.verify import unresolvable


def add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=(*TARGETS, "all"), default="all",
                   help="engine(s) to generate for (default: all)")
    p.add_argument("--nginx-version", default="1.22.1", metavar="X.Y.Z",
                   help="nginx version to generate for (default: 1.22.1, Debian 12); "
                        "from 1.25.1 HTTP/2 is written as 'http2 on'")
    p.add_argument("--varnish-proxy-listen", default="/run/cachewright-https.sock", metavar="PATH|HOST:PORT",
                   help="where Hitch hands HTTPS to Varnish (PROXY v2): a Unix socket only "
                        "Hitch's user may open (default: /run/cachewright-https.sock), or HOST:PORT (reachable by "
                        "every local process)")
    p.add_argument("--hitch-user", default="_hitch", metavar="USER",
                   help="the user Hitch runs as, owner of that Unix socket (default: _hitch)")
    p.add_argument("--nginx-modules-dir", default="/usr/lib/nginx/modules", metavar="DIR",
                   help="where nginx's dynamic modules live (default: Debian's)")


def targets(args: argparse.Namespace) -> tuple[str, ...]:
    return TARGETS if args.target == "all" else (args.target,)


def options(args: argparse.Namespace) -> Options:
    try:
        major, minor, patch = (int(p) for p in args.nginx_version.split("."))
    except ValueError:
        print(f"--nginx-version: {args.nginx_version!r} is not X.Y.Z", file=sys.stderr)
        raise SystemExit(2) from None
    return Options(nginx_version=(major, minor, patch), nginx_modules_dir=args.nginx_modules_dir,
                   varnish_proxy_listen=args.varnish_proxy_listen, hitch_user=args.hitch_user)


def warn(lines: tuple[str, ...] | list[str]) -> None:
    for line in lines:
        print(line, file=sys.stderr)


def stand_ins(policy: Policy) -> list[str]:
    """Origin hosts that do not resolve here (verified as 127.0.0.1), each announced."""
    hosts = unresolvable(s.host for s in policy.origin.servers)
    for host in hosts:
        print(f"note: origin host {host!r} does not resolve here; verified with 127.0.0.1 in "
              "its place", file=sys.stderr)
    return hosts
