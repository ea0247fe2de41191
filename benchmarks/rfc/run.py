"""The rfc check family on the generated configs and on the hand-written baselines, both engines.

    .venv/bin/python benchmarks/rfc/run.py [POLICY] [--json out.json] [--markdown out.md]

POLICY defaults to tests/data/rfc-respect.yaml (one origin, ``origin_headers: respect``). The
generated configs run as ``cachewright test --checks rfc`` does: a check whose capability the
engine lacks is reported as a limit, not run. The baselines (harness/compare/baseline.py: a
minimal ``proxy_cache`` config, a backend-only VCL) run every check, since no capability table
speaks for them. The markdown table is docs/rfc.md's results section; the target is that the
generated config passes every check the baseline passes, unless the check is a named
deviation of cachewright's (docs/policy.md).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from cachewright.generator.load import load
from cachewright.harness.checks import derive, run_checks, select
from cachewright.harness.compare.baseline import baseline_configs
from cachewright.harness.report.results import CheckResult
from cachewright.harness.runtime.local import LocalRuntime

ROOT = Path(__file__).resolve().parents[2]
ENGINES = ("nginx", "varnish")
WORD = {"passed": "pass", "failed": "FAIL", "unsupported": "limit", "skipped": "skip"}


def run(policy_file: Path, baseline: bool) -> list[CheckResult]:
    """The family on both engines, generated or baseline configs."""
    policy = load(str(policy_file))
    checks = select(derive(policy, conformance=True), ["rfc"])
    if baseline:
        checks = [dataclasses.replace(c, feature=None) for c in checks]
    runtime = LocalRuntime(configs=baseline_configs) if baseline else LocalRuntime()
    with runtime.start(policy, ENGINES) as stack:
        return run_checks(checks, stack, policy, ENGINES)


def table(generated: Sequence[CheckResult], baseline: Sequence[CheckResult]) -> str:
    """Counts, then one row per check: section, the four results, the capability."""
    cols = [(e, kind, {r.check_id: r for r in rs if r.engine == e})
            for e in ENGINES for kind, rs in (("generated", generated), ("baseline", baseline))]
    head = "| | " + " | ".join(f"{e} {kind}" for e, kind, _ in cols) + " |"
    lines = [head, "|---" * (len(cols) + 1) + "|"]
    for outcome in ("passed", "failed", "unsupported"):
        counts = [sum(r.outcome == outcome for r in by.values()) for _, _, by in cols]
        lines.append(f"| {WORD[outcome]} | " + " | ".join(str(n) for n in counts) + " |")
    lines += ["", "| check | section | " + " | ".join(f"{e} {k}" for e, k, _ in cols) + " | capability |",
              "|---" * (len(cols) + 3) + "|"]
    for check in generated:
        if check.engine != ENGINES[0]:
            continue
        section = check.description.split(":", 1)[0]
        cells = [WORD[by[check.check_id].outcome] if check.check_id in by else "—" for _, _, by in cols]
        capability = next((t for t in check.tags if t.startswith("http.")), "")
        lines.append(f"| `{check.check_id}` | {section} | " + " | ".join(cells) + f" | {capability} |")
    return "\n".join(lines) + "\n"


def worse(generated: Sequence[CheckResult], baseline: Sequence[CheckResult]) -> list[str]:
    """Checks the baseline passes and the generated config does not (fails, or reports an
    engine limit), per engine."""
    ok = {(r.check_id, r.engine) for r in baseline if r.outcome == "passed"}
    return [f"{r.check_id} [{r.engine}, {WORD[r.outcome]}]" for r in generated
            if r.outcome != "passed" and (r.check_id, r.engine) in ok]


def _row(result: CheckResult) -> dict[str, str]:
    return {"check_id": result.check_id, "engine": result.engine, "outcome": result.outcome,
            "message": result.message}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("policy", nargs="?", type=Path, default=ROOT / "tests/data/rfc-respect.yaml")
    parser.add_argument("--json", type=Path, help="write every result here")
    parser.add_argument("--markdown", type=Path, help="write the table here")
    args = parser.parse_args(argv)
    generated, baseline = run(args.policy, False), run(args.policy, True)
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    text = table(generated, baseline)
    print(f"rfc family on {args.policy} at {commit or 'an unknown commit'}\n\n{text}")
    behind = worse(generated, baseline)
    print("generated worse than the baseline: " + (", ".join(behind) or "none"))
    if args.markdown:
        args.markdown.write_text(text)
    if args.json:
        args.json.write_text(json.dumps({"commit": commit, "policy": str(args.policy),
                                         "generated": [_row(r) for r in generated],
                                         "baseline": [_row(r) for r in baseline]}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
