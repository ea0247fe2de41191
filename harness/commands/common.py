"""Arguments and steps shared by several subcommands.

Light on purpose: every command's parser is built on each start (``--version`` included), so
this module imports no compiler stage; its defaults are the compiler's own (``Options``).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from cachewright.generator.errors import CachewrightError, UsageError
from cachewright.generator.pipeline import Options
from cachewright.generator.targets import ENGINES

if TYPE_CHECKING:
    from cachewright.generator.model import Policy
    from cachewright.generator.pipeline import Compiled
    from cachewright.harness.engines.tools import Verified
    from cachewright.harness.report.github import Annotation

DEFAULTS = Options()
FORMATS = ("text", "github")


def add_volume(p: argparse.ArgumentParser, default: object = argparse.SUPPRESS) -> None:
    """``-q`` / ``-v``; on a subcommand with ``default=SUPPRESS``, so that an earlier
    ``cachewright -v COMMAND`` is not reset by the subcommand's parser."""
    volume = p.add_mutually_exclusive_group()
    volume.add_argument("-q", "--quiet", action="store_true", default=default,
                        help="say only what failed and the result")
    volume.add_argument("-v", "--verbose", action="store_true", default=default,
                        help="say more (e.g. each passed check's notes)")


def add_target(p: argparse.ArgumentParser) -> None:
    p.add_argument("--target", choices=(*ENGINES, "all"), default="all",
                   help="engine(s) to generate for (default: all)")
    version = ".".join(map(str, DEFAULTS.nginx_version))
    p.add_argument("--nginx-version", default=version, metavar="X.Y.Z",
                   help=f"nginx version to generate for (default: {version}, Debian 12); "
                        "from 1.25.1 HTTP/2 is written as 'http2 on'")
    p.add_argument("--varnish-proxy-listen", default=DEFAULTS.varnish_proxy_listen,
                   metavar="PATH|HOST:PORT",
                   help="where Hitch hands HTTPS to Varnish (PROXY v2): a Unix socket only "
                        "Hitch's user may open (default: %(default)s), or HOST:PORT (reachable "
                        "by every local process)")
    p.add_argument("--hitch-user", default=DEFAULTS.hitch_user, metavar="USER",
                   help="the user Hitch runs as, owner of that Unix socket (default: %(default)s)")
    p.add_argument("--nginx-modules-dir", default=DEFAULTS.nginx_modules_dir, metavar="DIR",
                   help="where nginx's dynamic modules live (default: Debian's, %(default)s)")


def targets(args: argparse.Namespace) -> tuple[str, ...]:
    return ENGINES if args.target == "all" else (args.target,)


def options(args: argparse.Namespace) -> Options:
    try:
        major, minor, patch = (int(p) for p in args.nginx_version.split("."))
    except ValueError:
        raise UsageError(f"--nginx-version: {args.nginx_version!r} is not X.Y.Z") from None
    return Options(nginx_version=(major, minor, patch), nginx_modules_dir=args.nginx_modules_dir,
                   varnish_proxy_listen=args.varnish_proxy_listen, hitch_user=args.hitch_user)


def compiled(args: argparse.Namespace, path: Path | None = None) -> tuple[Policy, Compiled]:
    """The policy at ``path`` (default: ``args.policy``) and its files for the command line's
    targets and options (its warnings printed). The garbage collector rests from the imports on
    (see ``collection_paused``): the compiler's modules define many records, and a compile makes
    no cycles worth collecting."""
    from cachewright.generator.pipeline import collection_paused, compile_policy

    with collection_paused():
        from cachewright.generator.load import load

        policy = load(path or args.policy)
        result = compile_policy(policy, targets(args), options(args))
    warn(result.warnings, args, policy.source)
    return policy, result


def verified(args: argparse.Namespace, policy: Policy, result: Compiled) -> list[Verified]:
    """The engines' own checks of the compiled files (each fleet node's on its own), origin hosts
    that do not resolve here standing in as 127.0.0.1; raises VerifyError."""
    from cachewright.generator.fleet import verify_nodes
    from cachewright.harness.engines.verify import verify

    hosts, folder = stand_ins(policy), args.policy.resolve().parent
    return verify_nodes(result.files, policy.fleet, lambda files: verify(files, folder, hosts))


def warn(lines: tuple[str, ...] | list[str], args: argparse.Namespace | None = None,
         source: str = "") -> None:
    """The compiler's warnings on stderr; with ``--format github`` also as warning annotations
    at the lines of ``source`` (the policy file) they name."""
    for line in lines:
        print(line, file=sys.stderr)
    if lines and github(args):
        from ..report.annotate import warning_annotations

        emit(warning_annotations(lines, source))


def add_format(p: argparse.ArgumentParser) -> None:
    """``--format text|github``: with github, problems are also printed on stdout as GitHub
    Actions annotations (``harness/report/annotate.py``); the text report is unchanged."""
    p.add_argument("--format", choices=FORMATS, default="text",
                   help="text (default), or github: also print each problem on stdout as a GitHub "
                        "Actions annotation at the policy line it is about")


def github(args: argparse.Namespace | None) -> bool:
    """Whether the command line asked for ``--format github``."""
    return getattr(args, "format", "text") == "github"


def emit(annotations: Iterable[Annotation]) -> None:
    """Workflow commands on stdout, where the runner reads them."""
    from ..report.github import render

    sys.stdout.write(render(tuple(annotations)))
    sys.stdout.flush()


@contextmanager
def annotating_errors(args: argparse.Namespace, file: Path | str | None = None) -> Iterator[None]:
    """With ``--format github``, a CachewrightError leaving the block is also printed as error
    annotations (on ``file``, default ``args.policy``, where it has no line of its own); it then
    goes on to the CLI's handler, which prints the message and returns the exit code."""
    try:
        yield
    except CachewrightError as exc:
        if github(args):
            from ..report.annotate import error_annotations

            emit(error_annotations(exc, str(file if file is not None else args.policy)))
        raise


def stand_ins(policy: Policy) -> list[str]:
    """Origin hosts that do not resolve here (verified as 127.0.0.1), each announced."""
    from cachewright.harness.engines.verify import unresolvable

    hosts = unresolvable(s.host for s in policy.origin.servers)
    for host in hosts:
        print(f"note: origin host {host!r} does not resolve here; verified with 127.0.0.1 in "
              "its place", file=sys.stderr)
    return hosts
