"""The harness runs fleets: ``cachewright test FLEET.yaml --runtime local`` starts every node on
its own loopback address and proves the fleet (harness/runtime/fleet.py, harness/checks/fleet.py),
each fleet check fails on a fleet broken the way it guards against, and ``cachewright purge
--fleet`` purges every node, the tier nearest the origin first.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from cachewright.generator.load import loads
from cachewright.generator.model import Policy
from cachewright.generator.pipeline import Options
from cachewright.generator.render import OutputFile
from cachewright.harness import checks, purging
from cachewright.harness.checks.fleet import front_view
from cachewright.harness.cli import main
from cachewright.harness.client import Client
from cachewright.harness.origin import OriginClient
from cachewright.harness.purging import fleet_tiers
from cachewright.harness.report.results import CheckResult
from cachewright.harness.runtime.fleet import FleetRuntime, FleetStack, node_files
from cachewright.harness.runtime.procs import group_members
from cachewright.harness.runtime.reaper import Marker

pytestmark = pytest.mark.engine

ROOT = Path(__file__).resolve().parent.parent
FLEET = """\
version: 1
name: fleet-harness
origin: {url: "http://10.0.2.10:8000"}
listen: {http: {port: 80}, hosts: [shop.example.com]}
rules:
  - name: static
    match: {path_prefix: /static/}
    ttl: 1h
    origin_headers: override
purge:
  allow: [127.0.0.1/32]
fleet:
  tiers:
    - name: edge
      engine: nginx
      nodes:
        - {name: edge-1, address: 10.0.1.11}
        - {name: edge-2, address: 10.0.1.12}
    - name: shield
      engine: varnish
      routing: shard
      port: 8080
      nodes:
        - {name: shield-1, address: 10.0.1.21}
        - {name: shield-2, address: 10.0.1.22}
  health: {interval: 1s, timeout: 1s, window: 2, threshold: 1, fail_timeout: 2s}
"""


@pytest.fixture(autouse=True)
def _engines() -> None:
    for binary in ("nginx", "varnishd", "varnishlog"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed")


@pytest.fixture(scope="module")
def policy() -> Policy:
    return loads(FLEET, "fleet.yaml")


def _run(stack: FleetStack, policy: Policy, check_id: str, front: str = "nginx") -> CheckResult:
    chosen = [c for c in checks.derive(policy) if c.id == check_id]
    assert len(chosen) == 1, [c.id for c in checks.derive(policy) if c.id.startswith("fleet.")]
    return checks.run_checks(chosen, stack, front_view(policy), (front,))[0]


@pytest.fixture(scope="module")
def fleet(policy: Policy) -> Iterator[FleetStack]:
    """The fleet above, as compiled: two nginx edges, two sharded Varnish shields."""
    if shutil.which("nginx") is None or shutil.which("varnishd") is None:
        pytest.skip("nginx and varnishd are needed")
    with FleetRuntime().start(policy, ("nginx",)) as stack:
        yield stack


def _edges(*edits: tuple[re.Pattern[str], str], file: str = "nginx.conf") -> object:
    """Node configs with each ``(pattern, replacement)`` applied to the edges' ``file``."""
    def configs(name: str, engine: str, policy: Policy, options: Options) -> dict[str, OutputFile]:
        files = node_files(name, engine, policy, options)
        if name.startswith("edge"):
            text = files[file].text
            for edit, by in edits:
                text, n = edit.subn(by, text)
                assert n, f"{edit.pattern} not in {name}'s {file}"
            files[file] = replace(files[file], text=text)
        return files
    return configs


#: the edges' config edits that break each check, per edge engine
BROKEN = {
    ("fleet.herd", "nginx"): _edges((re.compile(r"proxy_cache cw;"), "proxy_cache off;")),
    ("fleet.herd", "varnish"): _edges((re.compile(r"^sub vcl_recv \{\n", re.M), "sub vcl_recv {\n    return (pass);\n"),
                                      file="default.vcl"),
    ("fleet.shard.once", "nginx"): _edges((re.compile(r"^\s*hash \$cw_hash consistent;\n", re.M), "")),
    ("fleet.shard.once", "varnish"): _edges((re.compile(r"directors\.shard\(\)"), "directors.round_robin()"),
                                            (re.compile(r"^\s*cw_origin\.reconfigure\([^)]*\);\n", re.M), ""),
                                            (re.compile(r"cw_origin\.backend\(by=HASH, [^)]*\)"),
                                             "cw_origin.backend()"),
                                            file="default.vcl"),
    ("fleet.node-loss", "nginx"): _edges((re.compile(r"max_fails=\d+"), "max_fails=0"),
                                         (re.compile(r"proxy_next_upstream error timeout;"),
                                          "proxy_next_upstream off;")),
    # healthy from the start, probed once an hour: a lost shield stays in the ring; no retry
    ("fleet.node-loss", "varnish"): _edges((re.compile(r"\.interval = [^;]+;"), ".interval = 1h;\n    .initial = 2;"),
                                           (re.compile(r"bereq\.retries < \d+"), "bereq.retries < 0"),
                                           file="default.vcl"),
}


def test_the_fleet_shield_example_passes_through_the_cli(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["test", str(ROOT / "examples/fleet-shield/policy.yaml"), "--runtime", "local"])
    out, err = capsys.readouterr()
    assert code == 0 and "PASSED" in out, out + err  # every derived check ran, none skipped
    assert re.search(r"fleet\.purge +PASS", out), out
    assert re.search(r"scenario:static-once-for-the-fleet +PASS", out), out  # examples/fleet-shield
    assert re.search(r"fleet\.herd +PASS", out) and re.search(r"fleet\.shard\.once +PASS", out), out
    # the mapping of the policy's addresses to the run's loopback ones is shown
    assert "fleet: edge-1 (edge, nginx) 10.0.1.11 -> 127.0.0.2" in err, err
    assert "fleet: shield-2 (shield, varnish) 10.0.1.22 -> 127.0.0.5" in err, err


@pytest.mark.parametrize("check_id", ["fleet.herd", "fleet.shard.once", "fleet.purge"])
def test_each_fleet_check_passes_on_the_compiled_fleet(fleet: FleetStack, policy: Policy,
                                                        check_id: str) -> None:
    result = _run(fleet, policy, check_id)
    assert result.outcome == "passed", (result.message, result.details)


@pytest.mark.parametrize("edge", ["nginx", "varnish"])
def test_node_loss_costs_the_lost_nodes_objects_only(edge: str) -> None:
    """Both edges pass a failed fetch to the next shield at once (nginx: proxy_next_upstream;
    Varnish: a retry, the shard director's alt): no request fails."""
    policy = loads(FLEET.replace("engine: nginx", f"engine: {edge}"), "fleet.yaml")
    with FleetRuntime().start(policy) as stack:
        result = _run(stack, policy, "fleet.node-loss", edge)
        assert result.outcome == "passed", (result.message, result.details)
        assert stack.node_alive("shield-1")  # started again
        groups = [p.pid for run in stack.nodes.values() for p in run.run.procs]
        marker = Marker.load(stack.run_dir)
        assert marker is not None and set(groups) <= {g.pgid for g in marker.groups}
        assert all(Path(marker.workdir) in run.workdir.parents
                   for run in stack.nodes.values() if run.workdir is not None)
    assert not [pid for pid in groups if group_members(pid)]  # every node stopped
    assert not stack.run_dir.exists()
    assert "shield-1 lost:" in result.message and "ideal 1/2 = 50%" in result.message, result.message
    assert re.match(r"0 of \d+ requests failed", result.message), result.message


@pytest.mark.parametrize(("check_id", "edge", "says"), [
    ("fleet.herd", "nginx", "front nodes that did not store"),
    ("fleet.herd", "varnish", "front nodes that did not store"),
    ("fleet.shard.once", "nginx", "not stored on exactly one shard node"),
    ("fleet.shard.once", "varnish", "not stored on exactly one shard node"),
    ("fleet.node-loss", "nginx", "requests failed after the loss"),
    ("fleet.node-loss", "varnish", "requests failed after the loss"),
])
def test_each_fleet_check_fails_on_a_broken_fleet(check_id: str, edge: str, says: str) -> None:
    """herd: an edge that does not cache; shard.once: edges that spread round robin; node-loss:
    edges that keep sending to a lost shield (nginx: no retry, never marked down; Varnish: no
    retry, probed once an hour)."""
    policy = loads(FLEET.replace("engine: nginx", f"engine: {edge}"), "fleet.yaml")
    configs = BROKEN[check_id, edge]
    with FleetRuntime(configs=configs).start(policy) as stack:  # type: ignore[arg-type]
        result = _run(stack, policy, check_id, edge)
    assert result.outcome == "failed", result
    assert says in result.message, result.message


@pytest.mark.parametrize("edge", ["nginx", "varnish"])
def test_purge_fails_when_sent_to_the_edges_only(edge: str, monkeypatch: pytest.MonkeyPatch) -> None:
    every = fleet_tiers
    monkeypatch.setattr(purging, "fleet_tiers", lambda *a, **kw: every(*a, **kw)[-1:])
    policy = loads(FLEET.replace("engine: nginx", f"engine: {edge}"), "fleet.yaml")
    with FleetRuntime().start(policy) as stack:
        result = _run(stack, policy, "fleet.purge", edge)
    assert result.outcome == "failed", result
    assert "still answered the purged response" in result.message, result.message


def _maps(stack: FleetStack) -> list[str]:
    """``--map`` options for the run: every node at its loopback address and run port."""
    out = []
    for run in stack.nodes.values():
        out += ["--map", f"{run.node.name}={run.node.loopback}:{run.node.http_port}"]
    return out


def test_purge_command_purges_every_node_shields_first(fleet: FleetStack, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "fleet.yaml"
    source.write_text(FLEET, encoding="utf-8")
    edges = [Client(fleet.node_endpoint(n), "shop.example.com") for n in ("edge-1", "edge-2")]
    path = "/static/purge-command.css"
    before = {edge.get(path).response_id for edge in edges}
    assert len(before) == 1
    assert main(["purge", "--fleet", str(source), path, *_maps(fleet)]) == 0
    out = capsys.readouterr().out
    order = [line.split()[1] for line in out.splitlines() if line.startswith("OK")]
    assert order[:2] == ["shield-1", "shield-2"] and sorted(order[2:]) == ["edge-1", "edge-2"], out
    assert "PURGE /static/purge-command.css: 4 of 4 nodes purged" in out, out
    after = {edge.get(path).response_id for edge in edges}
    assert not after & before, (before, after)
    with OriginClient(fleet.origin.control_url) as origin:
        assert origin.count(path) == 2


def test_purge_command_names_the_nodes_that_did_not_confirm(fleet: FleetStack, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "fleet.yaml"
    source.write_text(FLEET, encoding="utf-8")
    maps = [*_maps(fleet), "--map", "shield-2=127.0.0.1:1"]  # nothing listens there
    assert main(["purge", "--fleet", str(source), "/static/x.css", "--timeout", "2", *maps]) == 1
    out = capsys.readouterr().out
    assert re.search(r"^FAIL shield-2 http://127\.0\.0\.1:1 ", out, re.M), out
    assert out.rstrip().endswith("3 of 4 nodes purged; failed: shield-2 http://127.0.0.1:1"), out
    assert re.search(r"^OK   edge-1 \S+ +404  not cached \(404 Not Found\)", out, re.M), out


def test_purge_map_names_a_node_of_the_fleet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "fleet.yaml"
    source.write_text(FLEET, encoding="utf-8")
    assert main(["purge", "--fleet", str(source), "/a", "--map", "edge-9=127.0.0.2"]) == 2
    assert "no node 'edge-9' in the fleet" in capsys.readouterr().err


@pytest.mark.parametrize(("options", "message"), [
    (["--engine", "varnish"], "--engine varnish: a fleet's checks run through its front tier, whose "
                              "engine is nginx (leave --engine out)"),
    (["--origin", "http://127.0.0.1:9"], "a fleet runs in front of the sample origin"),
])
def test_test_refuses_what_a_fleet_run_cannot_do(options: list[str], message: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "fleet.yaml"
    source.write_text(FLEET, encoding="utf-8")
    assert main(["test", str(source), "--runtime", "local", *options]) == 2
    assert message in capsys.readouterr().err
