"""Fleets (docs/fleets.md): the ``fleet:`` section, its errors, and what each node's files say.

One policy describes several nodes in tiers; ``compile`` writes one directory per node, each a
single node's output for that node's derived policy (generator/fleet.py). The engine tests run
``nginx -t`` / ``varnishd -C`` on every node.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cachewright.generator import fleet
from cachewright.generator.errors import CapabilityError, PolicyError
from cachewright.generator.load import loads
from cachewright.generator.model import Fleet, Policy
from cachewright.generator.pipeline import compile_policy
from cachewright.harness.cli import main
from cachewright.harness.engines.verify import verify

BASE = """\
version: 1
name: shop
origin: {url: http://127.0.0.1:8000, host_header: shop.example.com}
listen:
  http: {port: 80}
  https: {port: 443, certificate: certs/shop.crt, key: certs/shop.key, redirect_http: true}
rules:
  - name: static
    match: {path_prefix: /static/}
    ttl: 1d
"""
SHIELD = BASE + """\
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
"""
SHARD = BASE + """\
fleet:
  tiers:
    - name: edge
      engine: varnish
      nodes:
        - {name: edge-1, address: 10.0.1.11}
    - name: store
      engine: varnish
      routing: shard
      nodes:
        - {name: store-1, address: 10.0.1.21}
        - {name: store-2, address: 10.0.1.22}
        - {name: store-3, address: 10.0.1.23}
  health: {interval: 3s, timeout: 1s, window: 4, threshold: 2, fail_timeout: 20s}
"""


def _files(text: str) -> dict[str, str]:
    return {f.path: f.text for f in compile_policy(loads(text, "fleet.yaml")).files}


def _error(text: str) -> str:
    with pytest.raises(PolicyError) as exc:
        loads(text, "fleet.yaml")
    return str(exc.value)


def _fleet(tiers: str) -> str:
    return BASE + "fleet:\n  tiers:\n" + tiers


# ------------------------------------------------------------------------------ the language

def test_a_fleet_loads_into_frozen_records() -> None:
    policy = loads(SHARD, "fleet.yaml")
    assert isinstance(policy.fleet, Fleet)
    edge, store = policy.fleet.tiers
    assert (edge.name, edge.engine, edge.routing, edge.port) == ("edge", "varnish", "replicas", None)
    assert store.port is None and store.inner_port == 80
    assert [n.address for n in store.nodes] == ["10.0.1.21", "10.0.1.22", "10.0.1.23"]
    assert policy.fleet.health.fail_timeout == 20
    assert loads(BASE, "p.yaml").fleet is None


def test_health_has_defaults() -> None:
    health = loads(SHIELD, "fleet.yaml").fleet
    assert health is not None
    assert (health.health.interval, health.health.timeout, health.health.window,
            health.health.threshold, health.health.fail_timeout) == (2, 1, 5, 3, 10)


@pytest.mark.parametrize(("tiers", "expected"), [
    ("""\
    - name: edge
      engine: nginx
      nodes: [{name: edge-1, address: 10.0.1.11}, {name: edge-1, address: 10.0.1.12}]
""", "fleet.yaml:15:52: fleet.tiers[0].nodes[1].name: 'edge-1' is already the name of "
     "fleet.tiers[0].nodes[0] (expected unique node names: each is an output directory and a "
     "Cache-Status name)"),
    ("""\
    - name: edge
      engine: nginx
      nodes: [{name: edge-1, address: 10.0.1.11}, {name: edge-2, address: 10.0.1.11}]
""", "fleet.yaml:15:66: fleet.tiers[0].nodes[1].address: 10.0.1.11 is already the address of "
     "fleet.tiers[0].nodes[0] (two nodes of tier edge on one address and the ports of listen: "
     "expected one node per address)"),
    ("""\
    - name: edge
      engine: nginx
      nodes: [{name: edge-1, address: 10.0.1.11}]
    - name: shield
      engine: varnish
      nodes: [{name: shield-1, address: 10.0.1.11}]
""", "fleet.yaml:18:32: fleet.tiers[1].nodes[0].address: 10.0.1.11 is already the address of "
     "fleet.tiers[0].nodes[0] in tier edge: a tier would route to itself (a loop; expected a "
     "different address per tier, e.g. one host per node)"),
    ("""\
    - name: edge
      engine: nginx
      nodes: [{name: edge-1, address: 10.0.1.11}]
    - name: edge
      engine: varnish
      nodes: [{name: shield-1, address: 10.0.1.21}]
""", "fleet.yaml:16:7: fleet.tiers[1].name: 'edge' is already the name of fleet.tiers[0] "
     "(expected unique tier names)"),
    ("""\
    - name: edge
      engine: nginx
      nodes: [{name: edge-1, address: 10.0.1.11}]
    - name: shield
      engine: varnish
      routing: shard
      nodes: [{name: shield-1, address: 10.0.1.21}]
""", "fleet.yaml:18:7: fleet.tiers[1].routing: shard needs at least two nodes (one node holds "
     "every key: add nodes, or write routing: replicas)"),
    ("""\
    - name: edge
      engine: varnish
      routing: shard
      nodes: [{name: edge-1, address: 10.0.1.11}, {name: edge-2, address: 10.0.1.12}]
""", "fleet.yaml:15:7: fleet.tiers[0].routing: shard on the front tier: the balancer in front "
     "of it would have to hash by cachewright's cache key (put a tier with routing: replicas in "
     "front of the shard tier)"),
    ("""\
    - name: edge
      engine: nginx
      nodes: [{name: edge-1, address: app.internal}]
""", "fleet.yaml:15:39: fleet.tiers[0].nodes[0].address: \"app.internal\" is not valid (an "
     "IPv4 address such as 10.0.1.11 (IPv6 is not supported yet))"),
    ("""\
    - name: edge
      engine: nginx
      nodes: [{name: edge-1, address: 10.0.1.11}]
    - name: shield
      engine: varnish
      nodes: [{name: shield-1, address: 198.51.100.21}, {name: shield-2, address: 8.8.4.4}]
""", "fleet.yaml:18:74: fleet.tiers[1].nodes[1].address: 8.8.4.4 is a public address: clients "
     "could reach inner tier shield and skip the tier in front (expected a private address, e.g. "
     "10.0.1.21, on the network the tier in front shares with it)"),
    ("""\
    - name: edge
      engine: apache
      nodes: [{name: edge-1, address: 10.0.1.11}]
""", "fleet.yaml:14:15: fleet.tiers[0].engine: \"apache\" is not one of: nginx, varnish"),
    ("""\
    - name: edge
      engine: nginx
      nodes: []
""", "fleet.yaml:15:14: fleet.tiers[0].nodes: needs at least 1 item(s)"),
    ("""\
    - name: edge
      engine: nginx
      port: 8080
      nodes: [{name: edge-1, address: 10.0.1.11}]
""", "fleet.yaml:15:7: fleet.tiers[0].port: applies to inner tiers: the front tier serves listen "
     "(its ports; remove port, or set listen.http.port / listen.https.port)"),
])
def test_bad_fleets_are_errors_with_their_position(tiers: str, expected: str) -> None:
    assert expected in _error(_fleet(tiers))


def test_a_listener_address_is_not_used_in_a_fleet_a_warning() -> None:
    text = SHIELD.replace("http: {port: 80}", "http: {port: 80, address: 127.0.0.1}")
    assert loads(text, "fleet.yaml").warnings == (
        "fleet.yaml:5:20: listen.http.address: warning: 127.0.0.1 is not used in a fleet: each "
        "front-tier node listens on its own address (fleet.tiers[0].nodes[].address)",)


def test_an_engine_refusal_names_the_tier_and_the_policy_position() -> None:
    text = SHARD.replace("http://127.0.0.1:8000", "https://origin.example.com")
    with pytest.raises(CapabilityError) as exc:
        compile_policy(loads(text, "fleet.yaml"))
    message = str(exc.value)
    assert message.startswith("tier store (varnish): fleet.yaml:3:")
    assert "origin.https" in message and "alternative:" in message
    assert message.count("tier store") == 1  # once per tier, not per node


# ------------------------------------------------------------------------------ node policies

def test_each_node_gets_its_own_listener_origin_and_role() -> None:
    nodes = fleet.node_policies(loads(SHIELD, "fleet.yaml"))
    assert list(nodes) == ["edge-1", "edge-2", "shield-1", "shield-2"]
    edge, shield = nodes["edge-1"].policy, nodes["shield-2"].policy
    assert edge.listen.https is not None and edge.listen.https.address == "10.0.1.11"
    assert edge.listen.http is not None and edge.listen.http.address == "10.0.1.11"
    assert [(s.host, s.port) for s in edge.origin.servers] == [("10.0.1.21", 8080), ("10.0.1.22", 8080)]
    assert edge.origin.host_header is None and edge.origin.probe is None  # nginx: passive only
    assert edge.role is not None and edge.role.next_routing == "shard" and not edge.role.inner
    assert shield.listen.https is None
    assert shield.listen.http is not None
    assert (shield.listen.http.address, shield.listen.http.port) == ("10.0.1.22", 8080)
    assert shield.origin.host_header == "shop.example.com"  # the last tier: the policy's origin
    assert shield.role is not None and shield.role.trusted == ("10.0.1.11", "10.0.1.12")
    assert shield.headers.cache_status_name == "shield-2"
    assert shield.rules == edge.rules and shield.cache == edge.cache


def test_a_policy_without_a_fleet_has_no_nodes() -> None:
    assert fleet.node_policies(loads(BASE, "p.yaml")) == {}


# ------------------------------------------------------------------------------ nginx nodes

def test_nginx_edge_hashes_the_cache_key_over_the_shard_tier() -> None:
    conf = _files(SHIELD)["edge-1/nginx/nginx.conf"]
    upstream = re.search(r"upstream cw_origin \{\n(.*?)\n    \}", conf, re.S)
    assert upstream is not None
    assert upstream.group(1).splitlines() == [
        "        hash $cw_hash consistent;",
        "        server 10.0.1.21:8080 max_fails=3 fail_timeout=10s;",
        "        server 10.0.1.22:8080 max_fails=3 fail_timeout=10s;",
        "        keepalive 32;"]
    # each location hashes exactly its cache key
    keys = re.findall(r'proxy_cache_key "([^"]+)";', conf)
    hashes = re.findall(r'set \$cw_hash "([^"]+)";', conf)
    assert keys and hashes == keys
    assert "proxy_next_upstream error timeout;" in conf


def test_nginx_edge_keeps_the_clients_host_and_appends_its_cache_status() -> None:
    conf = _files(SHIELD)["edge-2/nginx/nginx.conf"]
    assert "proxy_set_header Host $host;" in conf
    assert "shop.example.com" not in conf  # origin.host_header is the last tier's business
    assert "proxy_hide_header Cache-Status;" not in conf  # the shield's entry is passed on
    assert 'add_header Cache-Status "edge-2; $cw_outcome; detail=static" always;' in conf
    assert "listen 10.0.1.12:443 ssl;" in conf and "listen 10.0.1.12:80;" in conf
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in conf
    assert "cw_trusted" not in conf  # the front tier trusts no peer


def test_nginx_replicas_are_round_robin_with_the_fleets_failure_marking() -> None:
    text = SHIELD.replace("      routing: shard\n", "      routing: replicas\n")
    text = text.replace("routing: replicas\n      port: 8080", "routing: replicas\n      port: 8080")
    text += "  health: {threshold: 2, fail_timeout: 30s}\n"
    conf = _files(text)["edge-1/nginx/nginx.conf"]
    assert "hash " not in conf and "$cw_hash" not in conf
    assert "server 10.0.1.21:8080 max_fails=2 fail_timeout=30s;" in conf


INNER_NGINX = BASE + """\
fleet:
  tiers:
    - name: edge
      engine: varnish
      nodes:
        - {name: edge-1, address: 10.0.1.11}
        - {name: edge-2, address: 10.0.1.12}
    - name: mid
      engine: nginx
      routing: shard
      nodes:
        - {name: mid-1, address: 10.0.1.21}
        - {name: mid-2, address: 10.0.1.22}
"""


def test_inner_nginx_trusts_only_the_front_tier() -> None:
    conf = _files(INNER_NGINX)["mid-1/nginx/nginx.conf"]
    geo = re.search(r"geo \$remote_addr \$cw_trusted \{\n(.*?)\n    \}", conf, re.S)
    assert geo is not None
    assert geo.group(1).split("\n") == ["        default 0;", "        10.0.1.11 1;",
                                        "        10.0.1.12 1;"]
    assert "proxy_set_header X-Forwarded-Proto $cw_scheme;" in conf
    assert "proxy_set_header X-Forwarded-For $cw_client;" in conf
    assert 'proxy_cache_key "$cw_scheme://$host$cw_path?$cw_rawquery";' in conf
    assert "listen 10.0.1.21:80;" in conf and " ssl" not in conf
    assert "return 301" not in conf  # an inner tier never redirects to HTTPS
    assert "location = /.well-known/cachewright/health {" in conf
    assert 'proxy_set_header Host "shop.example.com";' in conf  # last tier: origin.host_header
    assert "proxy_hide_header Cache-Status;" in conf  # from the real origin: replaced as today


# ------------------------------------------------------------------------------ Varnish nodes

def test_varnish_edge_shards_by_hash_with_probes() -> None:
    vcl = _files(SHARD)["edge-1/varnish/default.vcl"]
    assert "new cw_origin = directors.shard();" in vcl
    assert "cw_origin.reconfigure(replicas=1000);" in vcl
    assert "set bereq.backend = cw_origin.backend(by=HASH, alt=bereq.retries);" in vcl
    # a GET or HEAD whose fetch failed goes to the ring's next node, up to the other two
    assert ('    if (bereq.retries < 2 && (bereq.method == "GET" || bereq.method == "HEAD")) {\n'
            "        return (retry);") in vcl
    for i in (1, 2, 3):
        assert f'.host = "10.0.1.2{i}";\n    .port = "80";' in vcl
    assert vcl.count(".probe = cw_probe;") == 3
    probe = re.search(r"probe cw_probe \{\n(.*?)\n\}", vcl, re.S)
    assert probe is not None and probe.group(1).split("\n") == [
        '    .url = "/.well-known/cachewright/health";', "    .interval = 3s;",
        "    .timeout = 1s;", "    .window = 4;", "    .threshold = 2;",
        "    .expected_response = 200;"]
    assert "set bereq.http.host" not in vcl  # the client's Host goes on
    assert "cw_fleet_front" not in vcl


def test_varnish_replicas_are_round_robin() -> None:
    text = SHARD.replace("routing: shard", "routing: replicas")
    vcl = _files(text)["edge-1/varnish/default.vcl"]
    assert "new cw_origin = directors.round_robin();" in vcl
    assert "set bereq.backend = cw_origin.backend();" in vcl
    assert "reconfigure" not in vcl


def test_varnish_inner_tier_trusts_exactly_the_front_tiers_addresses() -> None:
    vcl = _files(SHIELD)["shield-1/varnish/default.vcl"]
    acl = re.search(r"acl cw_fleet_front \{\n(.*?)\n\}", vcl, re.S)
    assert acl is not None
    assert acl.group(1).split("\n") == ['    "10.0.1.11"/32;', '    "10.0.1.12"/32;']
    assert 'if (req.http.X-Forwarded-Proto == "https") {' in vcl
    assert 'hash_data(var.get("scheme"));' in vcl
    assert 'set bereq.http.host = "shop.example.com";' in vcl
    assert '"shield-1; hit; detail="' in vcl and "X-Cw-Behind" not in vcl
    assert "synth(750" not in vcl  # no redirect on an inner tier


def test_varnish_non_last_tier_appends_its_cache_status() -> None:
    vcl = _files(SHARD)["edge-1/varnish/default.vcl"]
    assert 'set beresp.http.X-Cw-Behind = beresp.http.Cache-Status + ", ";' in vcl
    assert ('header.append(beresp.http.Cache-Status, beresp.http.X-Cw-Behind + "edge-1; hit; '
            'detail=" + var.get("rule"));') in vcl
    assert ('set resp.http.Cache-Status = resp.http.X-Cw-Behind + "edge-1; fwd=miss; detail=" + '
            'var.get("rule");') in vcl
    assert "unset resp.http.X-Cw-Behind;" in vcl
    store = _files(SHARD)["store-2/varnish/default.vcl"]
    assert "X-Cw-Behind" not in store and '"store-2; fwd=miss; detail="' in store


def test_a_varnish_front_tier_with_https_gets_hitch_per_node() -> None:
    files = _files(SHARD)
    assert "edge-1/hitch/hitch.conf" in files
    assert '"10.0.1.11"' in files["edge-1/hitch/hitch.conf"] or "10.0.1.11" in files["edge-1/hitch/hitch.conf"]
    assert not any(p.startswith("store-1/hitch") for p in files)


def test_targets_select_the_nodes_of_an_engine() -> None:
    policy: Policy = loads(SHIELD, "fleet.yaml")
    paths = {f.path.split("/")[0] for f in compile_policy(policy, ("varnish",)).files}
    assert paths == {"shield-1", "shield-2"}


def test_compile_writes_one_directory_per_node(tmp_path: Path) -> None:
    source = tmp_path / "fleet.yaml"
    source.write_text(SHIELD, encoding="utf-8")
    assert main(["compile", str(source), "-o", str(tmp_path / "out")]) == 0
    written = sorted(str(p.relative_to(tmp_path / "out")) for p in (tmp_path / "out").rglob("*")
                     if p.is_file())
    assert written == [".cachewright-manifest", "edge-1/nginx/ffdhe2048.pem", "edge-1/nginx/nginx.conf",
                       "edge-2/nginx/ffdhe2048.pem", "edge-2/nginx/nginx.conf",
                       "shield-1/varnish/default.vcl", "shield-1/varnish/varnishd.args",
                       "shield-2/varnish/default.vcl", "shield-2/varnish/varnishd.args"]
    assert "-a http=10.0.1.21:8080" in (tmp_path / "out/shield-1/varnish/varnishd.args").read_text()
    assert main(["compile", str(source), "-o", str(tmp_path / "out"), "--check"]) == 0


# ------------------------------------------------------------------------------ the engines

@pytest.mark.engine
@pytest.mark.parametrize("text", [SHIELD, SHARD, INNER_NGINX], ids=["shield", "shard", "inner-nginx"])
def test_every_node_is_accepted_by_its_engine(text: str, tmp_path: Path) -> None:
    policy = loads(text, "fleet.yaml")
    compiled = compile_policy(policy)
    done = fleet.verify_nodes(compiled.files, policy.fleet,
                              lambda files: verify(files, tmp_path))
    assert policy.fleet is not None
    nodes = sum(len(t.nodes) for t in policy.fleet.tiers)
    hitch = sum(1 for f in compiled.files if f.path.endswith("hitch/hitch.conf"))
    assert len(done) == nodes + hitch


@pytest.mark.parametrize("command", ["serve", "compare --runtime docker"])
def test_commands_that_run_one_node_refuse_a_fleet(command: str, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "fleet.yaml"
    source.write_text(SHIELD, encoding="utf-8")
    name, *options = command.split()
    assert main([name, str(source), *options]) == 2
    err = capsys.readouterr().err
    assert f"{source}:11:1: fleet: `cachewright {command}` cannot run a fleet yet" in err, err
    assert f"cachewright test {source} --runtime local" in err, err


@pytest.mark.engine
def test_verify_checks_every_node(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "fleet.yaml"
    source.write_text(SHARD, encoding="utf-8")
    assert main(["verify", str(source)]) == 0
    out = capsys.readouterr()
    assert (out.out + out.err).count("ok: varnish accepts the configuration") == 4
    assert "ok: hitch accepts" in out.out + out.err


TIERS = st.lists(st.tuples(st.sampled_from(["nginx", "varnish"]), st.sampled_from(["replicas", "shard"]),
                           st.integers(1, 3)), min_size=1, max_size=3)


@settings(max_examples=40, deadline=None, database=None)
@given(TIERS)
def test_any_valid_fleet_compiles_every_node_and_a_wrong_one_says_why(tiers: list[tuple[str, str, int]]) -> None:
    """Every mix of engines, routings and sizes: an error at a position, or every node's files
    (each node once, its engine's, the next tier's nodes as its servers)."""
    text = BASE.replace("https: {port: 443, certificate: certs/shop.crt, key: certs/shop.key, "
                        "redirect_http: true}", "hosts: [shop.example.com]") + "fleet:\n  tiers:\n"
    for i, (engine, routing, count) in enumerate(tiers):
        nodes = ", ".join(f"{{name: t{i}n{j}, address: 10.0.{i}.{j + 1}}}" for j in range(count))
        text += f"    - {{name: t{i}, engine: {engine}, routing: {routing}, nodes: [{nodes}]}}\n"
    wrong = tiers[0][1] == "shard" or any(r == "shard" and n < 2 for _, r, n in tiers)
    if wrong:
        assert re.match(r"fleet\.yaml:\d+:\d+: fleet\.tiers\[\d\]\.routing: shard ", _error(text))
        return
    files = _files(text)
    for i, (engine, _, count) in enumerate(tiers):
        for j in range(count):
            main_file = "nginx/nginx.conf" if engine == "nginx" else "varnish/default.vcl"
            conf = files[f"t{i}n{j}/{main_file}"]
            if i + 1 < len(tiers):
                assert all(f"10.0.{i + 1}.{k + 1}" in conf for k in range(tiers[i + 1][2]))
            else:
                assert "127.0.0.1" in conf and "8000" in conf
    assert len({p.split("/")[0] for p in files}) == sum(n for _, _, n in tiers)
