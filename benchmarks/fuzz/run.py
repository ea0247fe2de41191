"""A long generator-fuzzing run: the oracle of ``tests/test_fuzz.py`` over many more inputs.

    export PYTHONPATH=tests   # the oracle and the policy strategies: tests/test_fuzz.py, tests/policies.py
    python benchmarks/fuzz/run.py --seconds 300
    python benchmarks/fuzz/run.py --examples 20000 [--engine-sample 40] [--out failures.txt]

From the repository root, with the virtualenv's python (cachewright installed). The oracle is test
code, imported as pytest imports it: tests/ on the path (PYTHONPATH), not in the package.

Draws inputs from both strategies (random YAML documents and mutated valid policies), in batches
of fresh hypothesis runs (new random seeds each batch), until the example or time budget is spent.
Every input must end in a positioned ``CachewrightError`` or cleanly read-back output files.
Prints inputs tried, the split (errors/compiled), time, and failures (target: 0), each failure
with its input; exits 1 if there were any. ``--engine-sample N`` also runs ``nginx -t``,
``varnishd -C`` and ``hitch --test`` on N distinct compiled outputs.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings
from policies import verify_many
from test_fuzz import any_input, classify

from cachewright.generator.render import OutputFile

ROOT = Path(__file__).resolve().parents[2]

BATCH = 500


@dataclass
class Tally:
    """What a run has seen so far: inputs by kind, oracle failures, compiled outputs to verify."""

    started: float = field(default_factory=time.monotonic)
    kinds: Counter[str] = field(default_factory=Counter)
    failures: list[tuple[str, str]] = field(default_factory=list)
    sample: dict[str, tuple[OutputFile, ...]] = field(default_factory=dict)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=0, help="stop after this many inputs")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long")
    parser.add_argument("--engine-sample", type=int, default=0,
                        help="check this many compiled outputs with the real engines")
    parser.add_argument("--out", type=Path, help="write failing inputs here")
    args = parser.parse_args(argv)
    if not args.examples and not args.seconds:
        args.seconds = 300.0
    return args


def fuzz(examples: int, seconds: float, engine_sample: int) -> Tally:
    """Batches of fresh hypothesis runs through the oracle until the budget is spent."""
    tally = Tally()

    def spent() -> bool:
        return bool((examples and sum(tally.kinds.values()) >= examples)
                    or (seconds and time.monotonic() - tally.started >= seconds))

    @settings(max_examples=BATCH, deadline=None, database=None,
              suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.reuse, Phase.generate])
    @given(text=any_input())
    def batch(text: str) -> None:
        if spent():
            return
        result = classify(text)
        tally.kinds[result.kind] += 1
        if result.kind == "failure":
            tally.failures.append((result.detail, text))
        elif result.compiled is not None and len(tally.sample) < engine_sample:
            tally.sample[text] = result.compiled.files

    while not spent():
        batch()
        print(f"\r{sum(tally.kinds.values())} inputs, {time.monotonic() - tally.started:.0f}s, "
              f"{len(tally.failures)} failures", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return tally


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    tally = fuzz(args.examples, args.seconds, args.engine_sample)
    elapsed = time.monotonic() - tally.started
    sample = tally.sample
    rejected = {t: m for t, m in verify_many(sample, ROOT / "tests").items() if m} if sample else {}
    failures = tally.failures + [(f"engines rejected it: {m}", t) for t, m in rejected.items()]
    kinds, total = tally.kinds, sum(tally.kinds.values())
    print(f"machine:  {platform.node()} {platform.machine()}, Python {platform.python_version()}")
    print(f"inputs:   {total} ({kinds['error']} positioned errors, {kinds['compiled']} compiled, "
          f"{kinds['failure']} failed the oracle)")
    print(f"time:     {elapsed:.1f}s ({total / elapsed:.0f} inputs/s)")
    if args.engine_sample:
        print(f"engines:  {len(sample)} compiled outputs checked, {len(rejected)} rejected")
    print(f"failures: {len(failures)}")
    for detail, text in failures[:20]:
        print(f"--- {detail}\n{text}")
    if args.out and failures:
        args.out.write_text("\n".join(f"--- {d}\n{t}" for d, t in failures), encoding="utf-8")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
