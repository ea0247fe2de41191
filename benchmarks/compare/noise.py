"""The noise floor of ``compare``'s throughput ratio: the baseline against an identical baseline.

    python benchmarks/compare/noise.py [examples/api/policy.yaml] [--engine varnish] [--rounds 20]

Starts two stacks of the same hand-written baseline config, in the order ``compare`` starts the
generated config and its baseline, and measures cached hits on both as ``compare`` does (back to
back, alternating which goes first, ``--duration`` seconds each). Any ratio but 1 is the
machine's and the method's, not a config's: the spread of single rounds, their median, and how
the median of five rounds (``compare``'s default) is distributed (drawn from the measured
rounds) show how far a generated/baseline ratio can be trusted on this machine. docs/compare.md
records its figures.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
import sys
from contextlib import ExitStack
from pathlib import Path

from cachewright.generator.load import load
from cachewright.harness.compare.baseline import baseline_configs
from cachewright.harness.compare.measure import hit_probe, prepare_hit
from cachewright.harness.compare.run import _round_ratios, _target, hit_rounds, median_interval
from cachewright.harness.compare.settings import Settings
from cachewright.harness.runtime.local import LocalRuntime

ROOT = Path(__file__).resolve().parents[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("policy", nargs="?", type=Path, default=ROOT / "examples" / "api" / "policy.yaml")
    parser.add_argument("--engine", choices=("nginx", "varnish"), default="varnish")
    parser.add_argument("--rounds", type=int, default=20)
    defaults = Settings()
    parser.add_argument("--duration", type=float, default=defaults.duration_s)
    parser.add_argument("--concurrency", type=int, default=defaults.concurrency)
    args = parser.parse_args(argv)
    settings = dataclasses.replace(defaults, duration_s=args.duration, concurrency=args.concurrency)
    policy = load(args.policy)
    engines = (args.engine,)
    with ExitStack() as stacks:
        first = stacks.enter_context(LocalRuntime(configs=baseline_configs).start(policy, engines))
        second = stacks.enter_context(LocalRuntime(configs=baseline_configs).start(policy, engines))
        a = stacks.enter_context(_target(first, policy, args.engine, settings))
        b = stacks.enter_context(_target(second, policy, args.engine, settings))
        probe = hit_probe(a.ctx)
        prepare_hit(a, probe)
        prepare_hit(b, probe)
        firsts, seconds = hit_rounds(a, b, probe, args.rounds)
    ratios = _round_ratios(firsts, seconds)
    cpu = [x.cpu_us_per_request / y.cpu_us_per_request for x, y in zip(firsts, seconds, strict=True)
           if x.cpu_us_per_request and y.cpu_us_per_request]
    draws = sorted(statistics.median(random.Random(i).sample(ratios, min(5, len(ratios))))
                   for i in range(2000))
    print(f"{policy.name} {args.engine}: {args.rounds} rounds of {args.duration:g} s, "
          f"{args.concurrency} connections")
    print("single rounds (first/second stack):", " ".join(f"{r:.2f}" for r in ratios))
    print(f"median {statistics.median(ratios):.3f}, range {min(ratios):.2f}-{max(ratios):.2f}; "
          f"median of 5 rounds: 5th percentile {draws[len(draws) // 20]:.3f}, "
          f"95th {draws[len(draws) * 19 // 20]:.3f}")
    interval = median_interval(ratios)
    if interval and interval.low is not None and interval.high is not None and interval.confidence is not None:
        print(f"confidence interval of the median of all {len(ratios)} rounds ({interval.confidence:.0%}): "
              f"{interval.low:.3f}-{interval.high:.3f}")
    if cpu:
        print(f"engine CPU per hit, first/second stack: median {statistics.median(cpu):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
