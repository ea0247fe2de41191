"""Wall time of `cachewright test` on an example, both engines, local runtime.

    python benchmarks/harness/run.py [examples/shop/policy.yaml] [--repeat 3]

Runs the whole command (derived checks and scenarios) as a user would, several times, and
reports the median wall time, plus the checks that dominate (from the JSON report: each
engine runs its checks in its own thread, so a run lasts about as long as its slowest engine).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


Result = dict[str, Any]  # one entry of the JSON report's "results": check_id, engine, duration, ...


def run_once(policy: Path, runtime: str) -> tuple[float, list[Result]]:
    """One ``cachewright test --json`` process: its wall time and the report's results."""
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "cachewright.harness", "test", str(policy), "--runtime",
                               runtime, "--json", str(report)], cwd=ROOT,
                              capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            sys.exit(f"cachewright test failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
        results: list[Result] = json.loads(report.read_text())["results"]
        return elapsed, results


def print_tables(policy: Path, runtime: str, times: list[float], results: list[Result]) -> None:
    """The wall times, each engine's sum of check durations and the slowest checks (last run)."""
    per_engine: dict[str, float] = {}
    for r in results:
        per_engine[r["engine"]] = per_engine.get(r["engine"], 0.0) + r["duration"]
    slowest = sorted(results, key=lambda r: -float(r["duration"]))[:6]
    print("| policy | runtime | runs | median wall time | min | max |")
    print("|---|---|---|---|---|---|")
    print(f"| {policy.resolve().relative_to(ROOT)} | {runtime} | {len(times)} | "
          f"{statistics.median(times):.1f} s | {min(times):.1f} s | {max(times):.1f} s |")
    print()
    print("| engine | sum of check durations |")
    print("|---|---|")
    for engine, total in per_engine.items():
        print(f"| {engine} | {total:.1f} s |")
    print()
    print("| slowest checks | engine | duration |")
    print("|---|---|---|")
    for r in slowest:
        print(f"| {r['check_id']} | {r['engine']} | {r['duration']:.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", nargs="?", type=Path, default=ROOT / "examples/shop/policy.yaml")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runtime", default="local")
    args = parser.parse_args()
    times: list[float] = []
    results: list[Result] = []
    for _ in range(args.repeat):
        elapsed, results = run_once(args.policy, args.runtime)
        times.append(elapsed)
    print_tables(args.policy, args.runtime, times, results)


if __name__ == "__main__":
    main()
