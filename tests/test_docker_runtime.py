"""The docker runtime gives the local runtime's check results (identical with the host network;
with the private network, identical except for the documented client-address differences), and
a killed run's containers and network are reaped by the next run.

The comparison has six runs (every example on the private network, two on the host network) of
about 50 s each, plus the local runtime's run of each example they compare with. A session runs a
rotating sample: one private-network and one host-network run, drawn by the seed of
``tests/corpus.py`` (in the session header; ``CACHEWRIGHT_CORPUS_SEED=N`` reproduces a
session's sample). The others are not collected; ``CACHEWRIGHT_DOCKER_ALL=1`` runs all six.

Needs a Docker engine: skipped where none answers, except with ``CI=true`` (then a failure). The
stand-in images are built with ``harness/images/build-local.sh`` when missing (minutes, once).
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from corpus import sample_seed

from cachewright.generator.load import load
from cachewright.generator.model import Policy
from cachewright.generator.render import OutputFile
from cachewright.harness import checks
from cachewright.harness.runtime.api import HarnessError
from cachewright.harness.runtime.docker import DockerRuntime, NetworkMode
from cachewright.harness.runtime.docker.images import LOCAL_IMAGES, ImageInfo, require_modules
from cachewright.harness.runtime.docker.reaper import RUN_LABEL, TMP_PREFIX
from cachewright.harness.runtime.docker.start import PRIVATE_NETWORK_DIFFERENCES
from cachewright.harness.runtime.local import LocalRuntime

REPO = Path(__file__).resolve().parents[1]
BUILD = REPO / "harness" / "images" / "build-local.sh"
EXAMPLES = ("static-site", "wordpress", "api", "shop")
Run = tuple[str, NetworkMode]
# every example on Docker's private network (the default); two on the host network as well
PRIVATE_RUNS: list[Run] = [(example, "private") for example in EXAMPLES]
HOST_RUNS: list[Run] = [("static-site", "host"), ("shop", "host")]
RUNS = PRIVATE_RUNS + HOST_RUNS
ENGINES = ("nginx", "varnish")
Outcomes = dict[tuple[str, str], str]
#: set to 1 to run all of RUNS instead of this session's sample
ALL_ENV = "CACHEWRIGHT_DOCKER_ALL"
SEED = sample_seed()


def sample(seed: int) -> set[Run]:
    """One private-network run and one host-network run, drawn by ``seed``. The host run is of
    the same example where that example has one, so the two share the local runtime's run; each
    run's odds stay even (1 in 4 private, 1 in 2 host)."""
    rng = random.Random(seed)
    private = rng.choice(PRIVATE_RUNS)
    host = [run for run in HOST_RUNS if run[0] == private[0]] or HOST_RUNS
    return {private, rng.choice(host)}


SAMPLE = sample(SEED)


def _selected() -> list[Run]:
    """This session's runs: the sample, or all of RUNS with ALL_ENV. The others are not
    collected (a docker test never shows as skipped in CI); the session header's seed says
    which ran."""
    if os.environ.get(ALL_ENV, "").strip() not in ("", "0"):
        return RUNS
    return [run for run in RUNS if run in SAMPLE]


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_client() -> object:
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.ping()
    except docker.errors.DockerException as exc:
        _unavailable(f"no Docker engine answers: {exc}")
    return client


@pytest.fixture(scope="session")
def images(docker_client: object) -> None:
    """The stand-in images, built once when missing (the script skips what exists)."""
    result = subprocess.run([str(BUILD)], capture_output=True, text=True, timeout=1800, check=False)
    if result.returncode != 0:
        _unavailable(f"{BUILD.name} failed ({result.returncode}): {result.stderr[-2000:]}")


def _outcomes(runtime: DockerRuntime | LocalRuntime, policy: Policy) -> Outcomes:
    with runtime.start(policy, ENGINES) as stack:
        results = checks.run_checks(checks.derive(policy), stack, policy, ENGINES)
    return {(r.engine, r.check_id): r.outcome for r in results}


@pytest.fixture(scope="session")
def local_outcomes() -> Callable[[str], Outcomes | None]:
    """The local runtime's outcomes of an example, run the first time a test asks for that
    example (None where the engines are not installed)."""
    have = all(shutil.which(b) for b in ("nginx", "varnishd", "hitch"))

    @functools.cache
    def outcomes(example: str) -> Outcomes | None:
        policy = load(REPO / "examples" / example / "policy.yaml")
        return _outcomes(LocalRuntime(), policy) if have else None

    return outcomes


def _expected(local: Outcomes | None, key: tuple[str, str], docker: str) -> str:
    if local is not None:
        return local[key]
    return docker if docker in ("passed", "unsupported", "skipped") else "passed"


def test_the_sample_is_one_private_and_one_host_run() -> None:
    samples = [sample(seed) for seed in range(100)]
    assert {tuple(sorted(n for _, n in s)) for s in samples} == {("host", "private")}
    assert set().union(*samples) == set(RUNS)


@pytest.mark.docker
@pytest.mark.parametrize(("example", "network"), _selected())
def test_examples_match_local_runtime(images: None, local_outcomes: Callable[[str], Outcomes | None],
                                      example: str, network: NetworkMode) -> None:
    policy = load(REPO / "examples" / example / "policy.yaml")
    got = _outcomes(DockerRuntime(network=network), policy)
    local = local_outcomes(example)
    if local is not None:
        assert set(got) == set(local)
    differ = {}
    for key, outcome in got.items():
        want = _expected(local, key, outcome)
        if network == "private" and key[1] in PRIVATE_NETWORK_DIFFERENCES:
            want = "skipped" if want == "passed" else want
        if outcome != want:
            differ[key] = (outcome, want)
    assert differ == {}, "(engine, check) -> (docker outcome, local outcome)"


def test_missing_module_is_named() -> None:
    conf = OutputFile("nginx/nginx.conf", "load_module /usr/lib/nginx/modules/ngx_http_cache_purge_module.so;\n")
    with pytest.raises(HarnessError, match=r"image nginx:1\.27 \(nginx\) lacks ngx_http_cache_purge_module\.so"):
        require_modules("nginx", ImageInfo("nginx:1.27", nginx_modules=("ngx_stream_module.so",)),
                        {"nginx.conf": conf})
    vcl = OutputFile("varnish/default.vcl", "vcl 4.1;\nimport std;\nimport xkey;\n")
    with pytest.raises(HarnessError, match=r"lacks xkey, which this policy needs"):
        require_modules("varnish", ImageInfo("varnish:7.6", vmods=("libvmod_std.so",)),
                        {"default.vcl": vcl})


KILLED_RUN = textwrap.dedent("""
    import sys, time
    from cachewright.generator.load import load
    from cachewright.harness.runtime.docker import DockerRuntime
    policy = load(sys.argv[1])
    with DockerRuntime().start(policy, ("nginx", "varnish")) as stack:
        print(stack.run_id, flush=True)
        time.sleep(120)
""")


def _labelled(client: object, run_id: str) -> list[str]:
    label = {"label": f"{RUN_LABEL}={run_id}"}
    found = [c.name for c in client.containers.list(all=True, filters=label)]  # type: ignore[attr-defined]
    return found + [n.name for n in client.networks.list(filters=label)]  # type: ignore[attr-defined]


@pytest.mark.docker
def test_killed_run_is_reaped_by_the_next(images: None, docker_client: object) -> None:
    policy_file = REPO / "examples" / "shop" / "policy.yaml"
    with subprocess.Popen([sys.executable, "-c", KILLED_RUN, str(policy_file)], cwd=REPO,
                          stdout=subprocess.PIPE, text=True) as proc:
        try:
            assert proc.stdout is not None
            run_id = proc.stdout.readline().strip()
            assert run_id, "the run did not start"
            # origin, nginx, varnish, hitch, the two outsider relays, the network
            assert len(_labelled(docker_client, run_id)) == 7
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert _labelled(docker_client, run_id), "SIGKILL leaves the containers (the reaper's job)"
    assert list(Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{run_id}-*"))
    policy = load(policy_file)
    with DockerRuntime().start(policy, ("nginx",)) as stack:
        assert _labelled(docker_client, run_id) == []
        assert list(Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{run_id}-*")) == []
        new_run = stack.run_id  # type: ignore[attr-defined]
    assert _labelled(docker_client, new_run) == []


@pytest.mark.docker
def test_sigterm_cleans_up(images: None, docker_client: object) -> None:
    with subprocess.Popen([sys.executable, "-c", KILLED_RUN,
                           str(REPO / "examples" / "static-site" / "policy.yaml")],
                          cwd=REPO, stdout=subprocess.PIPE, text=True) as proc:
        assert proc.stdout is not None
        run_id = proc.stdout.readline().strip()
        assert run_id and _labelled(docker_client, run_id)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) != 0
    assert run_id and _labelled(docker_client, run_id) == []


@pytest.mark.docker
def test_images_are_the_local_stand_ins(images: None, docker_client: object) -> None:
    ids = {docker_client.images.get(tag).id for tag in LOCAL_IMAGES.values()}  # type: ignore[attr-defined]
    assert len(ids) == 1  # one rootfs, four tags


@pytest.mark.docker
def test_users_own_app_image_is_the_origin(images: None, docker_client: Any) -> None:
    """--origin-image: the user's app (here: an image committed with its own CMD) serves the
    engines; checks that program the sample origin are skipped, the rest still run."""
    from cachewright.harness.checks import derive, run_checks

    container = docker_client.containers.create(
        "cachewright/origin:local", ["true"], labels={"cachewright.test": "app-image"})
    try:
        cmd = ('CMD ["python3", "-m", "cachewright.harness.origin", "--host", "0.0.0.0", "--data-port", '
               '"8080", "--control-port", "8081"]')
        image = container.commit(repository="cachewright-test/app", tag="1",
                                 changes=[cmd, "WORKDIR /opt/cachewright",
                                          "ENV PYTHONPATH=/opt/cachewright"])
    finally:
        container.remove(force=True)
    try:
        policy = load(REPO / "examples" / "static-site" / "policy.yaml")
        runtime = DockerRuntime(app_image=image.id, app_port=8080)
        with runtime.start(policy, ("nginx", "varnish")) as stack:
            assert stack.origin.control_url == ""
            results = run_checks(derive(policy), stack, policy, ("nginx", "varnish"))
        outcomes = {(r.check_id, r.engine): r.outcome for r in results}
        assert outcomes[("defaults.path-guard", "nginx")] == "passed"
        assert outcomes[("defaults.path-guard", "varnish")] == "passed"
        assert outcomes[("rule.html", "nginx")] == "skipped"
        assert not [k for k, o in outcomes.items() if o == "failed"]
    finally:
        docker_client.images.remove(image.id, force=True)


@pytest.mark.docker
def test_missing_app_image_is_a_clean_error(images: None, capsys: pytest.CaptureFixture[str]) -> None:
    from cachewright.harness.cli import main

    policy = REPO / "examples" / "static-site" / "policy.yaml"
    code = main(["test", str(policy), "--runtime", "docker", "--origin-image", "cachewright-test/none:0"])
    err = capsys.readouterr().err
    assert code == 3
    assert err.strip() == "origin image 'cachewright-test/none:0' is not present (build or pull it first)"


@pytest.mark.docker
def test_replay_measures_on_the_docker_runtime(images: None, docker_client: object, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """``replay --engine both --runtime docker``: 60 requests over 6 URLs (1h TTL) measured in
    containers as predicted, 54 hits and 6 origin requests on each engine."""
    import json

    from cachewright.harness.cli import main

    policy, log = tmp_path / "policy.yaml", tmp_path / "access.log"
    policy.write_text("version: 1\nname: replay-docker\norigin: {url: http://origin.test:8000}\n"
                      "listen: {hosts: [shop.test], http: {port: 80}}\n"
                      "rules:\n  - {name: static, match: {path_prefix: /static/}, ttl: 1h}\n")
    log.write_text("".join(f'127.0.0.1 - - [07/Dec/2026:10:00:{i:02d} +0000] "GET /static/{i % 6}.css '
                           'HTTP/1.1" 200 5 "-" "curl/8"\n' for i in range(60)))
    assert main(["replay", str(policy), str(log), "--json", "--engine", "both", "--runtime", "docker",
                 "--speed", "100"]) == 0
    (static,) = [r for r in json.loads(capsys.readouterr().out)["rules"] if r["rule"] == "static"]
    assert (static["requests"], static["hits"], static["origin_requests"]) == (60, 54, 6)
    assert {(m["engine"], m["requests"], m["hits"], m["origin_requests"]) for m in static["measured"]} \
        == {("nginx", 60, 54, 6), ("varnish", 60, 54, 6)}
