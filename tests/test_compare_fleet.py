"""``cachewright compare`` on a fleet policy: the topologies it derives, their ideals, its report,
and (engine) the measured origin traffic of each topology against its ideal."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from cachewright.generator.load import load, loads
from cachewright.harness.cli import main
from cachewright.harness.compare.fleetrecords import FleetReport, TopologyResult
from cachewright.harness.compare.fleettext import fleet_text
from cachewright.harness.compare.records import Machine
from cachewright.harness.compare.roundrobin import connections
from cachewright.harness.compare.settings import FleetSettings
from cachewright.harness.compare.topologies import ideal_misses, round_robin_misses, topologies
from cachewright.harness.runtime.api import Endpoint, HarnessError

ROOT = Path(__file__).resolve().parent.parent
SHIELD = ROOT / "examples" / "fleet-shield" / "policy.yaml"
REPLICAS = """\
version: 1
name: three-replicas
origin: {url: "http://10.0.2.10:8000"}
listen: {http: {port: 80}, hosts: [shop.example.com]}
rules:
  - {name: static, match: {path_prefix: /static/}, ttl: 1h, origin_headers: override}
fleet:
  tiers:
    - name: edge
      engine: varnish
      nodes:
        - {name: a, address: 10.0.1.1}
        - {name: b, address: 10.0.1.2}
        - {name: c, address: 10.0.1.3}
"""


def test_the_topologies_keep_the_fleet_size_and_engines_and_the_rules() -> None:
    policy = load(SHIELD)
    found = topologies(policy)
    assert [t.shape for t in found] == ["1 nginx", "2 nginx", "2 nginx -> 1 varnish (replicas)",
                                        "2 nginx -> 2 varnish (shard)"]
    assert [t.front for t in found] == [1, 2, 2, 2]
    assert all(t.policy.rules == policy.rules and t.policy.cache == policy.cache for t in found)
    for t in found:
        addresses = [n.address for tier in t.fleet.tiers for n in tier.nodes]
        assert len(set(addresses)) == len(addresses), t.name  # no tier routes to itself


def test_a_one_tier_fleet_shields_and_shards_on_its_own_engine() -> None:
    found = {t.name: t for t in topologies(loads(REPLICAS, "fleet.yaml"))}
    assert found["replicas"].shape == "3 varnish"
    assert found["shard"].shape == "3 varnish -> 3 varnish (shard)"


def test_replicas_miss_each_key_once_per_node_that_sees_it() -> None:
    assert round_robin_misses(["a", "b", "a", "b"], 2) == 2  # node 1 sees a twice, node 2 b twice
    assert round_robin_misses(["a", "a", "b", "b"], 2) == 4  # each node sees both
    assert round_robin_misses(["a", "b", "c"], 5) == 3
    found = {t.name: t for t in topologies(load(SHIELD))}
    paths = ["a", "a", "b", "b", "a"]
    assert ideal_misses(found["replicas"], paths) == 4
    assert ideal_misses(found["shield"], paths) == ideal_misses(found["shard"], paths) == 2
    assert ideal_misses(found["one node"], paths) == 2


def _result(name: str, origin: int, ideal: int) -> TopologyResult:
    return TopologyResult(name=name, shape="2 nginx", nodes=2, requests=500, errors=0, statuses={200: 500},
                          distinct_keys=80, origin_requests=origin, origin_bytes=origin * 1024,
                          ideal_origin_requests=ideal, elapsed_s=1.0)


def test_the_report_gives_figures_per_10000_requests() -> None:
    machine = Machine(cpus=2, platform="x", python="3", engines={})
    report = FleetReport(policy_name="p", policy_file="p.yaml", path_example="/static/z1",
                         settings=FleetSettings(requests=500), machine=machine,
                         topologies=(_result("one node", 80, 80), _result("replicas", 150, 140)))
    data = report.to_json()
    assert data["format"] == "cachewright-compare-fleet"
    replicas = data["topologies"][1]
    assert replicas["origin_requests_per_10k"] == 3000
    assert replicas["origin_bytes_per_10k"] == 3000 * 1024
    assert replicas["hit_ratio"] == pytest.approx(0.7) and replicas["ideal_hit_ratio"] == pytest.approx(0.72)
    text = fleet_text(report)
    assert "replicas (2 nginx)" in text and "3,000" in text and "+2.0" in text
    assert not report.failed


def test_the_client_sends_to_loopback_only() -> None:
    with pytest.raises(HarnessError, match="loopback"):
        connections([Endpoint("nginx", "10.0.1.11", 80, None)], "http", "shop.example.com", None)


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """The shield example's topologies measured once through the command: 600 requests over 30
    keys (most keys reach both replicas)."""
    out = tmp_path_factory.mktemp("fleet") / "report.json"
    assert main(["compare", str(SHIELD), "--zipf-requests", "600", "--zipf-keys", "30",
                 "--json", str(out), "--quiet"]) == 0
    return {t["name"]: t for t in json.loads(out.read_text(encoding="utf-8"))["topologies"]}


@pytest.mark.engine
def test_every_topology_answers_the_whole_mix(measured: dict[str, dict[str, Any]]) -> None:
    assert list(measured) == ["one node", "replicas", "shield", "shard"]
    for name, t in measured.items():
        assert (t["requests"], t["errors"], t["statuses"]) == (600, 0, {"200": 600}), name
        assert t["origin_bytes"] == t["origin_requests"] * 1024, name


@pytest.mark.engine
@pytest.mark.parametrize("name", ["one node", "shield", "shard"])
def test_one_node_a_shield_and_a_shard_miss_each_key_once(measured: dict[str, dict[str, Any]], name: str) -> None:
    t = measured[name]
    assert t["ideal_origin_requests"] == t["distinct_keys"]
    assert abs(t["origin_requests"] - t["ideal_origin_requests"]) <= 1, t


@pytest.mark.engine
def test_replicas_cost_about_n_times_one_nodes_misses(measured: dict[str, dict[str, Any]]) -> None:
    one, replicas = measured["one node"], measured["replicas"]
    assert abs(replicas["origin_requests"] - replicas["ideal_origin_requests"]) <= 1, replicas
    assert 0.8 * 2 <= replicas["origin_requests"] / one["origin_requests"] <= 2, (one, replicas)
    assert replicas["hit_ratio"] < one["hit_ratio"]


def test_a_fleet_comparison_has_no_html_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compare", str(SHIELD), "--html", str(tmp_path / "r.html")]) == 2
    assert "--html: a fleet comparison has a text and a JSON report" in capsys.readouterr().err
