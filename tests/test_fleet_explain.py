"""``explain`` names, for a fleet policy, the node of a shard tier that stores a request: computed
in Python as the engine in front of the tier computes it (harness/engines/nginx_hash.py for
nginx's ``hash ... consistent``, varnish_shard.py for Varnish's shard director), and proven
against the real engines: a local fleet stores each URL on exactly the node ``explain`` names.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import zlib
from pathlib import Path

import pytest

from cachewright.generator.load import loads
from cachewright.harness.cli import main
from cachewright.harness.client import Client
from cachewright.harness.engines import nginx_hash, varnish_shard
from cachewright.harness.engines.explain import explain
from cachewright.harness.runtime.fleet import FleetRuntime
from cachewright.harness.selection.explain import build_request

FLEET = """\
version: 1
name: fleet-explain
origin: {url: "http://10.0.2.10:8000"}
listen: {http: {port: 80}, hosts: [shop.example.com]}
rules:
  - name: static
    match: {path_prefix: /static/}
    ttl: 1h
    origin_headers: override
fleet:
  tiers:
    - name: edge
      engine: nginx
      nodes:
        - {name: edge-1, address: 10.0.1.11}
    - name: shard
      engine: varnish
      routing: shard
      port: 8080
      nodes:
        - {name: shard-1, address: 10.0.1.21}
        - {name: shard-2, address: 10.0.1.22}
        - {name: shard-3, address: 10.0.1.23}
  health: {interval: 1s, timeout: 1s, window: 2, threshold: 1, fail_timeout: 2s}
"""
ROOT = Path(__file__).resolve().parent.parent
SHARDS = ("shard-1", "shard-2", "shard-3")
PATHS = [f"/static/{name}-{i}.{ext}" for i in range(10) for name, ext in
         (("app", "js"), ("logo", "png"), ("site", "css"))]


def _fleet(edge: str) -> str:
    return FLEET.replace("engine: nginx", f"engine: {edge}")


def test_nginx_ring_points_follow_the_ketama_chain() -> None:
    ring = nginx_hash.ring(("10.0.1.21:8080",))
    first = zlib.crc32(b"10.0.1.21\x008080" + bytes(4))
    second = zlib.crc32(b"10.0.1.21\x008080" + first.to_bytes(4, "little"))
    assert len(ring.points) == 160 and {first, second} <= set(ring.points)
    assert nginx_hash.owner(ring, "anything") == "10.0.1.21:8080"


def test_varnish_digest_separates_each_hash_data_call() -> None:
    assert varnish_shard.digest([("a",), ("b",)]) == hashlib.sha256(b"a\0b\0").digest()
    assert varnish_shard.digest([("h:x:", None)]) == hashlib.sha256(b"h:x:\0\0").digest()
    ring = varnish_shard.ring(["b1", "b2"])
    assert len(ring.points) == 2 * varnish_shard.REPLICAS
    assert varnish_shard.lookup(ring.points, 2**32 - 1) == len(ring.points) - 1  # no wrap


@pytest.mark.parametrize("edge", ["nginx", "varnish"])
def test_explain_names_the_shard_node(edge: str) -> None:
    policy = loads(_fleet(edge), "fleet.yaml")
    owners = {p: explain(policy, build_request(policy, "GET", p, [])).fleet[1].owner for p in PATHS}
    assert set(owners.values()) == set(SHARDS)  # 30 URLs spread over the three nodes
    hops = explain(policy, build_request(policy, "GET", "/other", [])).fleet
    assert hops[0].nodes == ("edge-1",) and hops[0].routing == "front"
    assert hops[1].owner is not None


def test_a_single_node_policy_has_no_fleet_section() -> None:
    policy = loads(FLEET.split("fleet:")[0], "policy.yaml")
    assert explain(policy, build_request(policy, "GET", "/static/a.css", [])).fleet == ()


def test_text_and_json_show_the_fleet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "fleet.yaml"
    source.write_text(FLEET, encoding="utf-8")
    policy = loads(FLEET, "fleet.yaml")
    owner = explain(policy, build_request(policy, "GET", "/static/a.css", [])).fleet[1].owner
    assert main(["explain", str(source), "GET", "/static/a.css"]) == 0
    out = capsys.readouterr().out
    assert "edge (nginx): any of edge-1, picked by an outside balancer" in out, out
    assert f"shard (varnish, shard): stored on {owner}, picked by the edge tier's nginx" in out, out
    assert main(["explain", str(source), "GET", "/static/a.css", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [hop["tier"] for hop in data["fleet"]] == ["edge", "shard"]
    assert data["fleet"][1]["owner"] == owner


@pytest.mark.engine
@pytest.mark.parametrize("edge", ["nginx", "varnish"])
def test_each_url_is_stored_on_the_node_explain_names(edge: str) -> None:
    """The real engines agree with explain for every one of 30 URLs."""
    for binary in ("nginx", "varnishd", "varnishlog"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed")
    policy = loads(_fleet(edge), "fleet.yaml")
    with FleetRuntime().start(policy) as stack:
        front = Client(stack.node_endpoint("edge-1"), "shop.example.com")
        for path in PATHS:
            assert front.get(path).status == 200, path
        stored = {name: stack.stored_each(name, PATHS) for name in SHARDS}
        run = stack.run_policy
        predicted = {p: explain(run, build_request(run, "GET", p, [])).fleet[1].owner for p in PATHS}
    actual = {p: [name for name in SHARDS if stored[name][p]] for p in PATHS}
    assert {p: [o] for p, o in predicted.items()} == actual
    assert len(set(predicted.values())) > 1


THREE = _fleet("varnish").replace("    - name: shard\n      engine: varnish",
                                  "    - name: shard\n      engine: nginx").replace("""  health:""", """\
    - name: deep
      engine: varnish
      routing: shard
      port: 8081
      nodes:
        - {name: deep-1, address: 10.0.1.31}
        - {name: deep-2, address: 10.0.1.32}
  health:""")


@pytest.mark.engine
def test_three_tiers_each_shard_tier_stores_where_explain_says() -> None:
    """A Varnish edge shards over nginx nodes, which shard over Varnish nodes: an inner nginx
    node hashes its own key (the client's scheme from the trusted X-Forwarded-Proto)."""
    for binary in ("nginx", "varnishd", "varnishlog"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed")
    policy = loads(THREE, "fleet.yaml")
    with FleetRuntime().start(policy) as stack:
        front = Client(stack.node_endpoint("edge-1"), "shop.example.com")
        for path in PATHS:
            assert front.get(path).status == 200, path
        tiers = {"shard": SHARDS, "deep": ("deep-1", "deep-2")}
        stored = {n: stack.stored_each(n, PATHS) for nodes in tiers.values() for n in nodes}
        run = stack.run_policy
        hops = {p: explain(run, build_request(run, "GET", p, [])).fleet for p in PATHS}
    for i, (tier, nodes) in enumerate(tiers.items(), start=1):
        actual = {p: [n for n in nodes if stored[n][p]] for p in PATHS}
        assert {p: [hops[p][i].owner] for p in PATHS} == actual, tier


@pytest.mark.engine
@pytest.mark.parametrize("edge", ["nginx", "varnish"])
def test_the_https_example_stores_where_explain_says(edge: str) -> None:
    """examples/fleet-shield: the key holds the scheme (https) and ignores utm_* parameters
    (nginx hashes the key without them, Varnish the URL vcl_recv rewrote without them)."""
    for binary in ("nginx", "varnishd", "varnishlog", *(("hitch",) if edge == "varnish" else ())):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed")
    text = (ROOT / "examples/fleet-shield/policy.yaml").read_text(encoding="utf-8")
    policy = loads(text.replace("engine: nginx", f"engine: {edge}"),
                   str(ROOT / "examples/fleet-shield/policy.yaml"))
    targets = PATHS[:12] + [f"/static/q-{i}.css?utm_source=x&v={i}" for i in range(4)] + \
        [f"/static/r-{i}.css?v={i}&utm_medium=y" for i in range(4)]
    with FleetRuntime().start(policy) as stack:
        front = Client(stack.node_endpoint("edge-1"), "shop.example.com", stack.ca_file)
        for target in targets:
            assert front.get(target, scheme="https").status == 200, target
        shields = ("shield-1", "shield-2")
        paths = [t.split("?")[0] for t in targets]
        stored = {n: stack.stored_each(n, paths) for n in shields}
        run = stack.run_policy
        predicted = {t.split("?")[0]: explain(run, build_request(run, "GET", t, []), "https").fleet[1]
                     for t in targets}
    assert all(hop.owner for hop in predicted.values()), predicted
    actual = {p: [n for n in shields if stored[n][p]] for p in paths}
    assert {p: [hop.owner] for p, hop in predicted.items()} == actual


KEYED = _fleet("nginx").replace("""fleet:""", """\
  - name: lang
    match: {path_prefix: /i18n/}
    ttl: 1h
    origin_headers: override
    key: {headers: [X-Lang], cookies: [currency]}
fleet:""")


@pytest.mark.engine
@pytest.mark.parametrize("edge", ["nginx", "varnish"])
def test_a_key_header_and_cookie_are_hashed_as_the_engine_hashes_them(edge: str) -> None:
    """A rule keyed on a header and a cookie: sent, empty or absent (Varnish hashes an unset
    header or cookie as an extra NUL byte, an empty header as nothing; vmod_cookie ignores an
    empty cookie and takes a repeated one's later value)."""
    for binary in ("nginx", "varnishd", "varnishlog"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed")
    policy = loads(KEYED.replace("engine: nginx", f"engine: {edge}"), "fleet.yaml")
    sent: dict[str, dict[str, str]] = {}
    for i in range(6):
        sent[f"/i18n/a-{i}"] = {"X-Lang": f"fr-{i}", "Cookie": f"currency=eur{i}"}
        sent[f"/i18n/b-{i}"] = {"Cookie": f"currency=usd{i}"}
        sent[f"/i18n/c-{i}"] = {"X-Lang": "", "Cookie": f"currency=chf{i}"}
        sent[f"/i18n/d-{i}"] = {"X-Lang": f"de-{i}"}
        sent[f"/i18n/e-{i}"] = {"X-Lang": f"it-{i}", "Cookie": "currency="}
        sent[f"/i18n/f-{i}"] = {"X-Lang": "nl", "Cookie": f"currency=x{i}; a=1; currency=y{i}"}
    with FleetRuntime().start(policy) as stack:
        front = Client(stack.node_endpoint("edge-1"), "shop.example.com")
        for path, headers in sent.items():
            assert front.get(path, headers).status == 200, path
        stored = {name: stack.stored_each(name, list(sent)) for name in SHARDS}
        run = stack.run_policy
        predicted = {p: explain(run, build_request(run, "GET", p, [f"{n}: {v}" for n, v in h.items()]))
                     .fleet[1].owner for p, h in sent.items()}
    actual = {p: [name for name in SHARDS if stored[name][p]] for p in sent}
    assert {p: [o] for p, o in predicted.items()} == actual
