"""A fleet on the docker runtime (``harness.runtime.docker.fleet``): every node its own container
on the run's network with its own address, the fleet checks through it (``fleet.partition``
too, the docker runtime's own), and the reaper covering a killed fleet run.

The runs need a Docker engine and the stand-in images (``cachewright/*:local``): skipped where
none answers, except with ``CI=true`` (then a failure).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from ipaddress import ip_network
from pathlib import Path

import pytest

from cachewright.generator.fleet import not_yet
from cachewright.generator.load import load, loads
from cachewright.generator.model import Fleet, FleetHealth, Node, Tier
from cachewright.harness import checks
from cachewright.harness.cli import main
from cachewright.harness.runtime.docker.fleet import given_subnet, mapped
from cachewright.harness.runtime.docker.reaper import RUN_LABEL, TMP_PREFIX, reap

REPO = Path(__file__).resolve().parents[1]
SHIELD = REPO / "examples" / "fleet-shield" / "policy.yaml"
#: the issue's target for the shield example's run on the docker runtime, images present
TARGET = 60.0


def _fleet(*addresses: str) -> Fleet:
    nodes = tuple(Node(f"n{i}", a) for i, a in enumerate(addresses))
    tiers = (Tier("edge", "nginx", "replicas", None, nodes[:1]),
             Tier("shard", "varnish", "shard", 8080, nodes[1:]))
    return Fleet(tiers, FleetHealth(2, 1, 5, 3, 10))


def test_the_policys_own_subnet_holds_its_addresses() -> None:
    assert given_subnet(load(SHIELD).fleet) == ip_network("10.0.1.0/24")  # type: ignore[arg-type]
    assert given_subnet(_fleet("10.0.1.11", "10.0.2.21", "10.0.3.22")) == ip_network("10.0.0.0/22")
    assert given_subnet(_fleet("192.168.7.2", "192.168.7.3", "192.168.7.4")) == ip_network("192.168.7.0/24")


@pytest.mark.parametrize("addresses", [("203.0.113.1", "203.0.113.2", "203.0.113.3"),  # public
                                       ("edge.internal", "a.internal", "b.internal"),  # names
                                       ("10.0.0.2", "10.200.0.2", "10.9.0.2"),  # wider than a /16
                                       ("10.0.1.1", "10.0.1.2", "10.0.1.3")],  # .1 is the gateway's
                         ids=["public", "names", "too-wide", "gateway"])
def test_other_addresses_are_mapped(addresses: tuple[str, ...]) -> None:
    fleet = _fleet(*addresses)
    if addresses[0] == "10.0.1.1":  # a wider subnet whose gateway it is not
        assert given_subnet(fleet) == ip_network("10.0.0.0/23")
        return
    assert given_subnet(fleet) is None
    mapping, origin = mapped(fleet, ip_network("172.30.0.0/16"), keep=False)  # type: ignore[arg-type]
    assert mapping == {"n0": "172.30.0.2", "n1": "172.30.0.3", "n2": "172.30.0.4"}
    assert origin == "172.30.0.5"


def test_kept_addresses_leave_the_origin_a_free_one() -> None:
    fleet = _fleet("10.0.1.2", "10.0.1.3", "10.0.1.5")
    mapping, origin = mapped(fleet, ip_network("10.0.1.0/24"), keep=True)  # type: ignore[arg-type]
    assert mapping == {"n0": "10.0.1.2", "n1": "10.0.1.3", "n2": "10.0.1.5"}
    assert origin == "10.0.1.4"


def test_test_runs_a_fleet_on_docker_and_partition_is_dockers_own() -> None:
    policy = load(SHIELD)
    not_yet(policy, "test", "docker")  # no UsageError
    local = {c.id for c in checks.derive(policy)}
    docker = {c.id for c in checks.derive(policy, runtime="docker")}
    assert docker - local == {"fleet.partition"}
    single = loads("version: 1\nname: x\norigin: {url: 'http://127.0.0.1:8000'}\n", "x.yaml")
    assert "fleet.partition" not in {c.id for c in checks.derive(single, runtime="docker")}


# --------------------------------------------------------------------------- with Docker


@pytest.fixture(scope="module")
def docker_client() -> object:
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
        for role in ("nginx", "varnish", "origin"):
            client.images.get(f"cachewright/{role}:local")
    except docker.errors.DockerException as exc:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"CI=true: {exc}", pytrace=False)
        pytest.skip(f"no Docker engine or stand-in images: {exc}")
    return client


@pytest.mark.docker
def test_the_shield_example_passes_its_fleet_checks(docker_client: object,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """One run: the fleet family (herd, shard.once, purge, node-loss, partition) on containers;
    the node addresses are the policy's own (10.0.1.0/24)."""
    started = time.monotonic()
    code = main(["test", str(SHIELD), "--runtime", "docker", "--checks", "fleet"])
    took = time.monotonic() - started
    out, err = capsys.readouterr()
    assert code == 0, out + err
    for check in ("fleet.herd", "fleet.shard.once", "fleet.purge", "fleet.node-loss", "fleet.partition"):
        assert any(line.startswith(check) and " PASS " in line for line in out.splitlines()), out
    assert "fleet: shield-1 (shield, varnish) 10.0.1.21 -> 10.0.1.21 port 8080" in err or \
        "mapped" in err, err  # another run holding 10.0.1.0/24 maps the nodes instead
    print(f"fleet-shield, --checks fleet, docker runtime: {took:.1f}s (the default set's target: {TARGET:.0f}s)")


KILLED_RUN = textwrap.dedent("""
    import sys, time
    from cachewright.generator.load import load
    from cachewright.harness.runtime.docker.fleet import DockerFleetRuntime
    with DockerFleetRuntime().start(load(sys.argv[1])) as stack:
        print(stack.run_id, flush=True)
        time.sleep(120)
""")


def _labelled(client: object, run_id: str) -> list[str]:
    label = {"label": f"{RUN_LABEL}={run_id}"}
    found = [c.name for c in client.containers.list(all=True, filters=label)]  # type: ignore[attr-defined]
    return found + [n.name for n in client.networks.list(filters=label)]  # type: ignore[attr-defined]


@pytest.mark.docker
def test_a_killed_fleet_run_is_reaped(docker_client: object) -> None:
    with subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(SHIELD)], cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) as proc:
        try:
            assert proc.stdout is not None
            run_id = proc.stdout.readline().strip()
            assert run_id, "the run did not start"
            # four nodes, the origin, the network (no relay: the example allows its own 10.0.0.0/8)
            assert len(_labelled(docker_client, run_id)) == 6
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert _labelled(docker_client, run_id), "SIGKILL leaves the containers (the reaper's job)"
    assert run_id in reap(docker_client)  # type: ignore[arg-type]
    assert _labelled(docker_client, run_id) == []
    assert list(Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{run_id}-*")) == []
