"""``cachewright diff OLD NEW``: which requests two versions of a policy treat differently.

The model lives in ``harness.diffing``; this module parses the command line, builds the request
set from its sources and prints. Its imports are inside ``run``, so listing the commands stays
fast.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from . import HELP, common

if TYPE_CHECKING:
    from ..diffing.compare import DiffResult
    from ..diffing.replay import Verdict
    from ..diffing.sources import LogRead

FORMATS = ("table", "json", "markdown", "github")


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``diff`` on the ``cachewright`` subparsers."""
    p = sub.add_parser(
        "diff", help=HELP["diff"],
        description="Compare two versions of a policy over a set of requests (each rule's "
                    "matching and boundary requests from both, plus --requests and --access-log) and report every "
                    "request whose outcome changes: the rule, cached or not, TTL, stale windows, "
                    "cache key, what the origin receives, purge reach; per engine where the "
                    "engines differ. Computed from the compiler's own lowering (as explain); "
                    "--verify-engines also replays the changes against the real engines. OLD and "
                    "NEW are policy files or REV:path from git (git show REV:path).",
        epilog="examples:\n  cachewright diff HEAD~1:policy.yaml policy.yaml\n"
               "  cachewright diff old.yaml new.yaml --requests requests.txt --exit-code\n"
               "  cachewright diff origin/main:policy.yaml policy.yaml --markdown > comment.md\n"
               "  cachewright diff HEAD:policy.yaml policy.yaml --format github\n"
               "  cachewright diff old.yaml new.yaml --access-log /var/log/nginx/access.log.1.gz\n"
               "  cachewright diff old.yaml new.yaml --verify-engines\n\n"
               "a requests file has one request per line: METHOD URL [Name: value]...\n"
               "  GET /static/app.js\n  GET https://shop.example.com/c/shoes Cookie: currency=eur\n\n"
               "exit: 0 (changes too, unless --exit-code), 1 changes with --exit-code or an\n"
               "engine disagreeing with --verify-engines, 2 bad input, 3 an engine missing",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("old", metavar="OLD", help="the old policy: a file, or REV:path (HEAD~1:policy.yaml)")
    p.add_argument("new", metavar="NEW", help="the new policy: a file, or REV:path")
    _add_options(p)
    p.set_defaults(run=run)


def _add_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--requests", action="append", type=Path, default=[], metavar="FILE",
                   help="also compare the requests in FILE (one per line: METHOD URL "
                        "[Name: value]...; repeatable)")
    p.add_argument("--access-log", action="append", type=Path, default=[], metavar="FILE",
                   help="also compare the distinct requests of this access log (nginx combined, "
                        "varnishncsa, JSON lines, gzip too: as replay reads it; repeatable)")
    p.add_argument("--max-log-requests", type=int, default=20_000, metavar="N",
                   help="distinct requests taken from the access logs at most (default: 20000; "
                        "the rest are counted and named in a note)")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--format", choices=FORMATS, default="table",
                     help="table (default), json, markdown (a pull-request comment), github "
                          "(workflow annotations at the NEW policy's rule lines)")
    out.add_argument("--json", dest="format", action="store_const", const="json",
                     help="the same as --format json")
    out.add_argument("--markdown", dest="format", action="store_const", const="markdown",
                     help="the same as --format markdown")
    p.add_argument("--exit-code", action="store_true",
                   help="exit 1 when any request behaves differently (default: 0 even then)")
    p.add_argument("--verify-engines", action="store_true",
                   help="replay each changed request against both real engines (local "
                        "processes), OLD and NEW side by side, and report where they do not "
                        "do what was predicted (cached or not, the rule); exit 1 then")


def run(args: argparse.Namespace) -> int:
    """Diff OLD and NEW, replay the changes when asked, print in the chosen format."""
    from cachewright.generator.errors import UsageError

    from ..diffing.compare import diff
    from ..diffing.sides import load_side
    from ..diffing.sources import LogRead, derived, from_entries, from_log, read_requests, request_set

    if args.max_log_requests < 1:
        raise UsageError("--max-log-requests takes a count from 1")
    old, new = load_side(args.old), load_side(args.new)
    common.warn((*old.warnings, *new.warnings))
    sources = [derived(old, "old"), derived(new, "new")]
    sources += [from_entries(read_requests(f), new, str(f)) for f in args.requests]
    logs = [(f, LogRead()) for f in args.access_log]
    sources += [from_log(f, (old, new), args.max_log_requests, read) for f, read in logs]
    result = diff(old, new, request_set(*sources), (args.old, args.new))
    for f, read in logs:
        _note_log(f, read, args.max_log_requests)
    verdicts = None
    if args.verify_engines:
        from ..diffing.replay import replay

        verdicts = replay(result)
    print(_output(args, result, verdicts), end="")
    failed = verdicts is not None and any(not v.agrees for v in verdicts)
    return 1 if failed or (args.exit_code and result.any) else 0


def _note_log(path: Path, read: LogRead, cap: int) -> None:
    """What an access log's reading passed over, on stderr."""
    if read.malformed:
        lines = ", ".join(map(str, read.first_malformed))
        common.warn([f"note: {path}: {read.malformed} malformed lines skipped (lines {lines}"
                     f"{', ...' if read.malformed > len(read.first_malformed) else ''})"])
    if read.beyond_cap:
        common.warn([f"note: {path}: {read.beyond_cap} requests beyond the first {cap} distinct "
                     "ones not compared (--max-log-requests)"])


def _output(args: argparse.Namespace, result: DiffResult, verdicts: list[Verdict] | None) -> str:
    import json

    from ..diffing import render

    if args.format == "json":
        doc = render.to_json(result)
        if verdicts is not None:
            doc["engines"] = render.verdicts_json(verdicts)
        return json.dumps(doc, indent=2) + "\n"
    if args.format == "github":
        return render.github(result, result.new.source, verdicts)  # REV:path: its file
    from .. import ui

    if args.format == "markdown":
        text = render.markdown(result)
    else:
        text = render.summary(result) + "\n" if ui.level == ui.QUIET else render.table(result)
    if verdicts is None:
        return text
    checked = render.verification(verdicts)
    return text + ("\n```\n" + checked + "```\n" if args.format == "markdown" else "\n" + checked)
