"""The whole policy corpus through `cachewright test` on both engines (local runtime).

    export PYTHONPATH=tests                               # the corpus generator, tests/corpus.py
    python benchmarks/corpus/run.py                       # the corpus: seed 0, 200 policies
    python benchmarks/corpus/run.py --seed 7 --count 20   # another slice
    python benchmarks/corpus/run.py --write-docs --keep /tmp/corpus   # refresh docs/corpus.md

From the repository root, with the virtualenv's python (cachewright installed). The generator is
a test helper, imported as pytest imports it: tests/ on the path (PYTHONPATH), not in the package.

Generates each policy with ``tests/corpus.py`` (the generator the CI sample uses), runs
``cachewright test POLICY --json`` on it, one policy at a time by default (``--jobs`` runs more at
once; the machine's cores are shared with the engines), and reports: policies, generator bugs (a
generated policy that does not load), runs without a report, checks run per engine, failures by
check id, policies with a failure, and the time taken. ``--keep DIR`` keeps every policy and
report; exit 1 when anything failed.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from corpus import CHECKOUT, CORPUS_SEED, CORPUS_SIZE, TRAITS, Outcome, generate, run

ROOT = Path(__file__).resolve().parents[2]

DOCS = ROOT / "docs" / "corpus.md"
BEGIN, END = "<!-- BEGIN CORPUS FIGURES -->", "<!-- END CORPUS FIGURES -->"
ENGINES = ("nginx", "varnish")


def run_all(seed: int, start: int, count: int, jobs: int, work: Path,
            command: Sequence[str]) -> list[Outcome]:
    """Every policy of the slice, ``jobs`` at a time; one progress line per policy."""
    policies = [generate(seed, i) for i in range(start, start + count)]

    def one(index: int) -> Outcome:
        outcome = run(policies[index], work, command=command)
        failed = len(outcome.failures)
        state = "generator bug" if outcome.load_error else "no report" if outcome.error else \
            f"{failed} failed" if failed else "ok"
        print(f"[{index + 1}/{count}] {outcome.policy.name} {outcome.seconds:.1f} s {state}",
              file=sys.stderr, flush=True)
        return outcome

    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        return list(pool.map(one, range(count)))


def figures(outcomes: Sequence[Outcome], wall: float, seed: int, start: int, jobs: int,
            code: str) -> str:
    """The markdown report of one corpus run."""
    results = [r for o in outcomes for r in o.results]
    counts = {e: Counter(r["outcome"] for r in results if r["engine"] == e) for e in ENGINES}
    bugs = [o for o in outcomes if o.load_error]
    broken = [o for o in outcomes if o.error]
    failing = [o for o in outcomes if o.failures]
    times = [o.seconds for o in outcomes if o.results]
    lines = [
        f"- Date: {date.today().isoformat()}",
        f"- Machine: {_machine()}",
        f"- Code: {code}",
        f"- Corpus: seed {seed}, policies {start}–{start + len(outcomes) - 1} "
        f"(`python tests/corpus.py --seed {seed} --index N` prints one); {jobs} at a time",
        "",
        "| figure | value |",
        "|---|---:|",
        f"| policies | {len(outcomes)} |",
        f"| generator bugs (a generated policy that does not load) | {len(bugs)} |",
        f"| runs without a report (the harness itself failed) | {len(broken)} |",
        f"| policies with a failed check | {len(failing)} |",
    ]
    for engine in ENGINES:
        c = counts[engine]
        lines.append(f"| {engine}: checks run (passed + failed) / failed / skipped / unsupported | "
                     f"{c['passed'] + c['failed']} / {c['failed']} / {c['skipped']} / "
                     f"{c['unsupported']} |")
    lines += [f"| wall time | {wall / 60:.1f} min |"]
    if times:
        lines.append(f"| per policy: median / 90th percentile / max | {statistics.median(times):.1f} s / "
                     f"{_quantile(times, 0.9):.1f} s / {max(times):.1f} s |")
    lines += ["", *_failure_table(outcomes), "", *_trait_table(outcomes)]
    lines += ["", *_problem_list(bugs + broken)]
    return "\n".join(lines).rstrip("\n") + "\n"


def _failure_table(outcomes: Sequence[Outcome]) -> list[str]:
    by_check: dict[str, Counter[str]] = {}
    policies: dict[str, set[str]] = {}
    for o in outcomes:
        for r in o.failures:
            check = _family(r["check_id"])
            by_check.setdefault(check, Counter())[r["engine"]] += 1
            policies.setdefault(check, set()).add(o.policy.name)
    if not by_check:
        return ["Failures by check: none."]
    rows = ["Failures by check id (rule names replaced by `NAME`):", "",
            "| check | nginx | varnish | policies | e.g. |", "|---|---:|---:|---:|---|"]
    for check, c in sorted(by_check.items(), key=lambda kv: -sum(kv[1].values())):
        example = sorted(policies[check])[0]
        rows.append(f"| `{check}` | {c['nginx']} | {c['varnish']} | {len(policies[check])} | "
                    f"{example} |")
    return rows


def _family(check_id: str) -> str:
    """``rule.blog.ttl`` -> ``rule.NAME.ttl``, so one check's failures over many rules add up."""
    parts = check_id.split(".")
    return ".".join(["rule", "NAME", *parts[2:]]) if parts[0] == "rule" else check_id


def _trait_table(outcomes: Sequence[Outcome]) -> list[str]:
    seen = Counter(t for o in outcomes for t in o.policy.traits)
    failed = Counter(t for o in outcomes if o.failures for t in o.policy.traits)
    rows = ["What the corpus exercises (policies with the trait, and of those with a failure):",
            "", "| trait | what | policies | with a failure |", "|---|---|---:|---:|"]
    for trait, what in TRAITS.items():
        what = what.replace("|", "\\|")  # a table cell, even inside backticks
        rows.append(f"| {trait} | {what} | {seen[trait]} | {failed[trait]} |")
    return rows


def _problem_list(outcomes: Sequence[Outcome]) -> list[str]:
    if not outcomes:
        return []
    return ["Problems:", "", *(f"- {o.summary().splitlines()[0][:300]}" for o in outcomes)]


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _machine() -> str:
    cpu = next((line.split(":", 1)[1].strip() for line in
                Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("model name")),
               platform.processor())
    return f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, Python {platform.python_version()}"


def _code() -> str:
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                          text=True, check=False).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                           capture_output=True, text=True, check=False).stdout.strip()
    return f"working tree at {head}" + (" with uncommitted changes" if dirty else "")


def write_docs(section: str) -> None:
    """Replace the figures between the markers of docs/corpus.md (the prose is kept)."""
    text = DOCS.read_text(encoding="utf-8")
    head, found, rest = text.partition(BEGIN)
    _, found_end, tail = rest.partition(END)
    if not (found and found_end):
        raise SystemExit(f"{DOCS}: markers {BEGIN} / {END} not found")
    DOCS.write_text(f"{head}{BEGIN}\n{section}{END}{tail}", encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=CORPUS_SEED)
    parser.add_argument("--start", type=int, default=0, help="first policy index")
    parser.add_argument("--count", type=int, default=CORPUS_SIZE)
    parser.add_argument("--jobs", type=int, default=1, help="policies tested at once")
    parser.add_argument("--cachewright", nargs="+", default=list(CHECKOUT), metavar="CMD",
                        help="how to start cachewright (default: the checkout's python -m cachewright.harness)")
    parser.add_argument("--keep", type=Path, help="keep every policy and JSON report here")
    parser.add_argument("--json", type=Path, help="write every failure here (policy, check, "
                        "engine, message)")
    parser.add_argument("--write-docs", action="store_true", help="rewrite docs/corpus.md's figures")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="cw-corpus-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        code = _code() if args.cachewright == list(CHECKOUT) else \
            f"`{' '.join(args.cachewright)}` (checkout at {_code()} when the run started)"
        started = time.monotonic()
        outcomes = run_all(args.seed, args.start, args.count, args.jobs, work, args.cachewright)
        wall = time.monotonic() - started
    section = figures(outcomes, wall, args.seed, args.start, args.jobs, code)
    print(section)
    if args.json:
        failures = [{"policy": o.policy.name, "seed": o.policy.seed, "index": o.policy.index,
                     **{k: r[k] for k in ("check_id", "engine", "message")}}
                    for o in outcomes for r in o.failures]
        args.json.write_text(json.dumps(failures, indent=1), encoding="utf-8")
    if args.write_docs:
        write_docs(section)
    return 1 if any(o.failures or o.load_error or o.error for o in outcomes) else 0


if __name__ == "__main__":
    sys.exit(main())
