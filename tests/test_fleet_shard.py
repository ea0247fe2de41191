"""``examples/fleet-shard`` (two nginx edges in front of three sharded Varnish nodes) passes
``cachewright test --runtime local``: every derived check ran and passed, none skipped
(its ``purge.allow`` holds 127.0.0.1, where the fleet purge is sent from).
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from cachewright.harness.cli import main

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parent.parent


def test_the_fleet_shard_example_passes_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    for binary in ("nginx", "varnishd", "varnishlog"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed")
    code = main(["test", str(ROOT / "examples/fleet-shard/policy.yaml"), "--runtime", "local"])
    out, err = capsys.readouterr()
    assert code == 0 and "PASSED" in out and "SKIP" not in out, out + err
    assert re.search(r"scenario:media-once-for-the-fleet +PASS", out), out  # examples/fleet-shard
    for check in ("fleet.herd", "fleet.shard.once", "fleet.purge"):
        assert re.search(rf"{re.escape(check)} +PASS", out), out
    assert "fleet: shard-3 (shard, varnish) 10.0.1.23 -> 127.0.0.6" in err, err
