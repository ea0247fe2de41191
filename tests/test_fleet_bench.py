"""``benchmarks/fleet/run.py`` runs end to end with tiny settings (60 keys), so that the script
measuring issue 20's fleet targets (docs/fleets.md, "Measured") cannot rot. The share of keys
fetched again after a node's loss is not asserted (with 60 keys it is the luck of the ring), nor
the failures behind Varnish edges (they answer 503 until their probes see the loss: a known miss).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parent.parent


def test_the_fleet_benchmark_runs_with_tiny_settings(tmp_path: Path) -> None:
    for binary in ("nginx", "varnishd", "varnishlog", "varnishstat"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed")
    out = tmp_path / "fleet.json"
    argv = [sys.executable, str(ROOT / "benchmarks/fleet/run.py"), "--keys", "60", "--herd", "6",
            "--purges", "2", "--json", str(out)]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False, cwd=ROOT)
    assert result.returncode in (0, 1), result.stdout + result.stderr
    figures = {f["name"]: f for f in json.loads(out.read_text())}
    assert len(figures) == 11, figures  # 5 per edge engine, and the purge
    for name, figure in figures.items():
        if "share fetched again" not in name and name != "shard, node loss: requests failed (varnish edges)":
            assert figure["met"], figure
    assert "| herd, shield fleet (3 nginx edges) | 1 origin request(s) |" in result.stdout
    assert "<!-- fleet-bench:start -->" in result.stdout
