"""``cachewright diff --verify-engines`` on all four single-node examples: for each example and
each kind of edit (a TTL change, a rule moved above another, a key cookie added, a rule
deleted), up to ``--edits`` generated edits that change some request are diffed, and every
changed request is replayed on nginx and Varnish, OLD and NEW side by side. Reports the replays
that do what diff predicted; CI replays one rotating example (tests/test_diff_engines.py).

    export PYTHONPATH=tests                       # the edit generator, tests/diffedits.py
    python benchmarks/diff/run.py                 # 4 examples x 4 kinds x 2 edits
    python benchmarks/diff/run.py --edits 5 --write-docs

From the repository root, with the virtualenv's python. Exit 1 when a replay disagrees.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from diffedits import KINDS, SINGLE_NODE, candidates, diffed, example, write_edited

from cachewright.harness.diffing.replay import replay

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs" / "benchmarks.md"
HEADING = "## Diff: --verify-engines on the four examples"


@dataclass(frozen=True)
class Row:
    example: str
    kind: str
    edits: int
    changed: int
    replays: int
    agree: int
    seconds: float


def one(name: str, kind: str, edits: int, work: Path) -> Row:
    """Up to ``edits`` changing edits of ``kind`` to ``name``, each diffed and replayed."""
    started = time.monotonic()
    done = changed = replays = agree = 0
    for index, edit in enumerate(candidates(example(name), kind)):
        if done == edits:
            break
        folder = work / f"{name}-{kind}-{index}"
        folder.mkdir()
        result, _ = diffed(example(name), write_edited(example(name), edit, folder))
        if not result.changed:
            continue
        verdicts = replay(result)
        done, changed = done + 1, changed + len(result.changed)
        replays, agree = replays + len(verdicts), agree + sum(v.agrees for v in verdicts)
        for v in verdicts:
            if not v.agrees:
                print(f"  DISAGREES {name} {kind} {edit}: {v}", file=sys.stderr)
    return Row(name, kind, done, changed, replays, agree, time.monotonic() - started)


def table(rows: list[Row]) -> list[str]:
    out = ["| example | edit | edits | changed requests | replays | as predicted | time |",
           "|---|---|---:|---:|---:|---:|---:|"]
    out += [f"| {r.example} | {r.kind} | {r.edits} | {r.changed} | {r.replays} | {r.agree} | "
            f"{r.seconds:.1f} s |" for r in rows]
    return out


def section(rows: list[Row], edits: int) -> str:
    total, agree = sum(r.replays for r in rows), sum(r.agree for r in rows)
    none = [f"{r.example}/{r.kind}" for r in rows if r.edits == 0]
    return "\n".join([
        HEADING, "",
        "```", "PYTHONPATH=tests python benchmarks/diff/run.py --edits "
        f"{edits} --write-docs", "```", "",
        f"- Date: {datetime.date.today().isoformat()}; {platform.python_version()}, local runtime "
        "(nginx and Varnish processes); each replay is one changed request sent twice to one "
        "engine running OLD or NEW, judged by the origin's count and the Cache-Status detail.",
        "", *table(rows), "",
        f"- {agree} of {total} replays do what `diff` predicted"
        + (f"; no edit of {', '.join(none)} changes a request (its rules do not overlap)." if none
           else "."), "",
    ])


def write_docs(text: str) -> None:
    doc = DOCS.read_text(encoding="utf-8")
    start = doc.find(HEADING + "\n")
    if start == -1:
        doc = doc.rstrip("\n") + "\n\n" + text
    else:
        end = doc.find("\n## ", start + 1)
        doc = doc[:start] + text + ("" if end == -1 else doc[end:])
    DOCS.write_text(doc, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--edits", type=int, default=2, help="changing edits per example and kind")
    p.add_argument("--write-docs", action="store_true", help="rewrite the section in docs/benchmarks.md")
    args = p.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory(prefix="cw-diff-bench-") as tmp:
        for name in SINGLE_NODE:
            for kind in KINDS:
                rows.append(one(name, kind, args.edits, Path(tmp)))
                r = rows[-1]
                print(f"{name} {kind}: {r.agree}/{r.replays} as predicted ({r.seconds:.1f} s)",
                      file=sys.stderr, flush=True)
    text = section(rows, args.edits)
    print(text)
    if args.write_docs:
        write_docs(text)
    return 0 if all(r.agree == r.replays for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
