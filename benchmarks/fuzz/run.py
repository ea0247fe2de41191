"""A long generator-fuzzing run: the oracle of ``tests/test_fuzz.py`` over many more inputs.

    python benchmarks/fuzz/run.py --seconds 300
    python benchmarks/fuzz/run.py --examples 20000 [--engine-sample 40] [--out failures.txt]

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
from pathlib import Path

from hypothesis import HealthCheck, Phase, given, settings

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))

from policies import verify_many  # noqa: E402
from test_fuzz import any_input, classify  # noqa: E402

from cachewright.generator.render import OutputFile  # noqa: E402

BATCH = 500


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=0, help="stop after this many inputs")
    parser.add_argument("--seconds", type=float, default=0.0, help="stop after this long")
    parser.add_argument("--engine-sample", type=int, default=0,
                        help="check this many compiled outputs with the real engines")
    parser.add_argument("--out", type=Path, help="write failing inputs here")
    args = parser.parse_args(argv)
    if not args.examples and not args.seconds:
        args.seconds = 300.0
    kinds: Counter[str] = Counter()
    failures: list[tuple[str, str]] = []
    sample: dict[str, tuple[OutputFile, ...]] = {}
    started = time.monotonic()

    def spent() -> bool:
        return bool((args.examples and sum(kinds.values()) >= args.examples)
                    or (args.seconds and time.monotonic() - started >= args.seconds))

    @settings(max_examples=BATCH, deadline=None, database=None,
              suppress_health_check=list(HealthCheck),
              phases=[Phase.explicit, Phase.reuse, Phase.generate])
    @given(text=any_input())
    def batch(text: str) -> None:
        if spent():
            return
        result = classify(text)
        kinds[result.kind] += 1
        if result.kind == "failure":
            failures.append((result.detail, text))
        elif result.compiled is not None and len(sample) < args.engine_sample:
            sample[text] = result.compiled.files

    while not spent():
        batch()
        done = sum(kinds.values())
        print(f"\r{done} inputs, {time.monotonic() - started:.0f}s, {len(failures)} failures",
              end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    elapsed = time.monotonic() - started
    rejected = {t: m for t, m in verify_many(sample, ROOT / "tests").items() if m} if sample else {}
    failures += [(f"engines rejected it: {m}", t) for t, m in rejected.items()]
    total = sum(kinds.values())
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
