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

ROOT = Path(__file__).resolve().parents[2]


def run_once(policy: Path, runtime: str) -> tuple[float, dict[str, object]]:
    with tempfile.TemporaryDirectory() as tmp:
        report = Path(tmp) / "report.json"
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "cachewright.harness", "test", str(policy), "--runtime",
                               runtime, "--json", str(report)], cwd=ROOT,
                              capture_output=True, text=True, check=False)
        elapsed = time.monotonic() - started
        if done.returncode != 0:
            sys.exit(f"cachewright test failed:\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}")
        return elapsed, json.loads(report.read_text())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("policy", nargs="?", type=Path, default=ROOT / "examples/shop/policy.yaml")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--runtime", default="local")
    args = parser.parse_args()
    times, last = [], {}
    for _ in range(args.repeat):
        elapsed, last = run_once(args.policy, args.runtime)
        times.append(elapsed)
    results = last["results"]  # type: ignore[index]
    per_engine = {}
    for r in results:  # type: ignore[attr-defined]
        per_engine.setdefault(r["engine"], 0.0)
        per_engine[r["engine"]] += r["duration"]
    slowest = sorted(results, key=lambda r: -r["duration"])[:6]  # type: ignore[arg-type]
    print("| policy | runtime | runs | median wall time | min | max |")
    print("|---|---|---|---|---|---|")
    print(f"| {args.policy.resolve().relative_to(ROOT)} | {args.runtime} | {len(times)} | "
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


if __name__ == "__main__":
    main()
