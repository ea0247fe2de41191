"""Black-box checks against a user's own app (``--origin``): what the policy must do with the
app's answers, the paths they probe, and ``cachewright test`` on both engines in front of
``tests/data/ux_app.py`` (the app of issue 23), honest about what ran."""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import processes
import pytest
from tampering import tamper

from cachewright.generator.load import load
from cachewright.harness.checks import derive_for_app
from cachewright.harness.checks.blackbox import BlackboxError, Options, base_request, parse_paths, storable
from cachewright.harness.cli import main
from cachewright.harness.client import Identity, Response

DATA = Path(__file__).resolve().parent / "data"
APP, POLICY, SCENARIOS = DATA / "ux_app.py", DATA / "ux_app.yaml", DATA / "ux_scenarios.yaml"
PATHS = ["--path", "static=/static/app.3f9a0c1d.js", "--path", "api=/api/v1/items",
         "--path", "default=/about"]


def response(status: int = 200, body: bytes = b"x", **headers: str) -> Response:
    return Response(status, [(k.replace("_", "-"), v) for k, v in headers.items()], body, 0.0)


# --------------------------------------------------------------------------- without engines


@pytest.mark.parametrize(("rule", "answer", "stored", "why"), [
    ("home", response(), True, "status 200, TTL 60s"),
    ("home", response(Cache_Control="private"), False, "Cache-Control: private"),
    ("home", response(Cache_Control="no-store"), False, "Cache-Control: no-store"),
    ("home", response(Set_Cookie="a=b"), False, "Set-Cookie"),
    ("static", response(Set_Cookie="a=b"), True, "status 200, TTL 2592000s"),  # strip_cookies
    ("home", response(Cache_Control="max-age=0"), False, "Cache-Control: max-age=0"),
    ("static", response(Cache_Control="max-age=0"), True, "status 200, TTL 2592000s"),  # override
    ("home", response(Vary="*"), False, "Vary: *"),
    ("home", response(404), False, "status 404: stored only with status_ttl or a lifetime"),
    ("home", response(404, Cache_Control="max-age=9"), True, "status 404, your app's lifetime 9s"),
    ("home", response(500), False, "status 500, never stored without status_ttl"),
    ("default", response(), False, "status 200 and no TTL"),
    ("default", response(Cache_Control="max-age=60"), True, "your app's lifetime 60s"),
    ("default", response(Expires="Thu, 01 Jan 1970 00:00:00 GMT"), False, "Cache-Control: None"),
])
def test_what_the_policy_stores_of_the_apps_answers(rule: str, answer: Response, stored: bool,
                                                    why: str) -> None:
    policy = load(POLICY)
    chosen = next(r for r in (*policy.rules, policy.default_rule) if r.name == rule)
    storage = storable(policy, chosen, answer)
    assert storage.stored is stored and why in storage.why


def test_paths_must_be_rule_equals_path() -> None:
    assert parse_paths(["api=/api/v1/items?x=1"]) == (("api", "/api/v1/items?x=1"),)
    with pytest.raises(BlackboxError, match="--path 'api': expected RULE=/path"):
        parse_paths(["api"])


def test_a_path_must_select_its_rule() -> None:
    policy = load(POLICY)
    blog = next(r for r in policy.rules if r.name == "blog")
    assert base_request(policy, blog, "/blog/hello") is not None
    with pytest.raises(BlackboxError, match="--path blog=/account/: that request selects rule "
                                            "'account', not 'blog'"):
        base_request(policy, blog, "/account/")
    with pytest.raises(BlackboxError, match="the policy has no rule 'blogg'"):
        derive_for_app(policy, Options(paths=(("blogg", "/blog/"),)))


def test_the_app_of_issue_23_gets_at_least_15_checks_per_engine() -> None:
    policy = load(POLICY)
    runnable, left_out = derive_for_app(policy, Options(paths=parse_paths(PATHS[1::2])))
    ids = [c.id for c in runnable]
    assert len(ids) >= 15 and not any(c.needs_control for c in runnable)
    assert {"blackbox.rule.home", "blackbox.rule.account", "blackbox.rule.api.vary",
            "blackbox.rule.static.strip-cookies", "blackbox.rule.home.cookies",
            "blackbox.rule.blog.authorization", "blackbox.methods", "blackbox.purge.url",
            "defaults.path-guard"} <= set(ids)
    assert left_out and all(c.needs_control for c in left_out)


def test_identity_is_the_header_else_etag_else_a_body_digest() -> None:
    with_etag = response(ETag='"abc"', X_Request_Id="r1")
    assert Identity("X-Request-Id").of(with_etag) == "X-Request-Id r1"
    assert Identity("X-Other").of(with_etag) is None
    assert Identity("X-Other").describe(with_etag) == "no X-Other"
    assert Identity().of(with_etag) == 'ETag "abc"'
    assert Identity().of(response(body=b"a")) != Identity().of(response(body=b"b"))
    assert Identity().of(response(body=b"a")).startswith("body sha256:")  # type: ignore[union-attr]


# --------------------------------------------------------------------------- on the engines


@pytest.fixture(scope="module")
def app() -> Iterator[str]:
    """tests/data/ux_app.py on a free loopback port, stopped by its PID."""
    with processes.ux_app() as url:
        yield url


def run(tmp_path: Path, *args: str) -> tuple[int, dict[str, Any]]:
    report = tmp_path / "report.json"
    code = main(["test", str(POLICY), "--json", str(report), *args])
    return code, json.loads(report.read_text())


@pytest.mark.engine
@pytest.mark.parametrize("identity", [[], ["--response-id-header", "X-Request-Id"]],
                         ids=["etag", "request-id"])
def test_the_real_app_passes_every_check_that_ran_on_both_engines(
        app: str, tmp_path: Path, identity: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run(tmp_path, "--origin", app, *PATHS, *identity, "--scenarios", str(SCENARIOS))
    failed = [f"{r['check_id']} [{r['engine']}]: {r['message']}" for r in doc["results"]
              if r["outcome"] != "passed"]
    assert code == 0 and doc["verdict"] == "passed" and not failed, "\n".join(failed)
    for engine in ("nginx", "varnish"):
        assert doc["summary"][engine]["passed"] >= 15
        assert {"scenario:blog-post-cached", "blackbox.rule.api.vary"} <= {
            r["check_id"] for r in doc["results"] if r["engine"] == engine}
    out = capsys.readouterr().out
    assert "PASSED in" in out and "left out; run without --origin" in out


@pytest.mark.engine
def test_without_real_paths_the_run_is_incomplete_and_says_why(
        app: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, doc = run(tmp_path, "--origin", app, "--no-scenarios")
    out = capsys.readouterr().out
    assert code == 4 and doc["verdict"] == "incomplete" and doc["exit_code"] == 4
    reasons = [r["reason"] for r in doc["skip_reasons"]]
    assert any("--path static=/real/page" in r for r in reasons), reasons
    assert "INCOMPLETE (" in out and "SKIP 8× rule 'static'" in out
    skip_lines = [line for line in out.splitlines() if line.startswith("SKIP ")]
    assert len(skip_lines) == len(reasons)  # one line per reason, not per check
    code, doc = run(tmp_path, "--origin", app, "--no-scenarios", "--allow-skips")
    assert code == 0 and doc["verdict"] == "incomplete" and doc["allow_skips"] is True


@pytest.mark.engine
def test_a_hand_shortened_ttl_fails_the_black_box_hit(app: str, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    changed = tamper(monkeypatch, lambda _, text: text.replace(
        "proxy_cache_valid 200 203 204 300 301 308 1m;", "proxy_cache_valid 200 203 204 300 301 308 0s;")
        .replace('set req.http.X-Cw-Ttl = "60";', 'set req.http.X-Cw-Ttl = "0";'))
    code, doc = run(tmp_path, "--origin", app, "--checks", "blackbox.rule.home", "--no-scenarios",
                    "--response-id-header", "X-Request-Id")
    assert len(changed) == 2 and code == 1
    failed = {(r["check_id"], r["engine"]): r["message"] for r in doc["results"]
              if r["outcome"] == "failed"}
    assert {("blackbox.rule.home", "nginx"), ("blackbox.rule.home", "varnish")} <= set(failed)
    assert "expected a hit" in failed[("blackbox.rule.home", "nginx")]


@pytest.mark.docker
def test_the_apps_image_runs_the_black_box_checks_too(tmp_path: Path) -> None:
    """``--origin-image``: the app as a container (built here from the sample origin's python
    image, with ux_app.py and its own CMD) gets the same checks on the docker runtime."""
    docker = pytest.importorskip("docker")
    try:
        client = docker.from_env()
        client.images.get("cachewright/origin:local")
    except docker.errors.DockerException as exc:
        pytest.skip(f"no Docker engine or no cachewright/origin:local image: {exc}")
    image = _app_image(client)
    try:
        code, doc = run(tmp_path, "--runtime", "docker", "--origin-image", image,
                        "--origin-port", "8080", *PATHS, "--no-scenarios")
    finally:
        client.images.remove(image, force=True)
    failed = [f"{r['check_id']} [{r['engine']}]: {r['message']}" for r in doc["results"]
              if r["outcome"] != "passed"]
    assert code == 0 and not failed, "\n".join(failed)
    assert min(doc["summary"][e]["passed"] for e in ("nginx", "varnish")) >= 15


def _app_image(client: Any) -> str:
    """An image whose own CMD runs ux_app.py on port 8080; its id."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        tar.add(APP, arcname="ux_app.py")
    container = client.containers.create("cachewright/origin:local", ["true"],
                                          labels={"cachewright.test": "ux-app"})
    try:
        container.put_archive("/opt", buffer.getvalue())
        cmd = 'CMD ["python3", "/opt/ux_app.py", "--host", "0.0.0.0", "--port", "8080"]'
        image = container.commit(repository="cachewright-test/ux-app", tag="1", changes=[cmd])
    finally:
        container.remove(force=True)
    return str(image.id)


@pytest.mark.parametrize(("args", "message"), [
    (["--path", "blog=/blog/"], "--path applies to your own app (--origin or --origin-image)"),
    (["--origin", "http://127.0.0.1:9", "--path", "blog"],
     "--path 'blog': expected RULE=/path, e.g. static=/static/app.3f2a.js"),
    (["--origin", "http://127.0.0.1:9", "--path", "blog=/admin/"],
     "--path blog=/admin/: that request selects rule 'admin', not 'blog'"),
    # a selection of nothing is never a passed run
    (["--checks", "rule", "--checks", "purge.nothing"],
     "--checks purge.nothing: no check derived for this policy has that id prefix or tag (its "
     "checks' families: cache, defaults, faults, purge, rule, security)."),
    (["--origin", "http://127.0.0.1:9", "--checks", "blackbox.nothing"],
     "--checks blackbox.nothing: no check derived for this policy has that id prefix or tag "
     "(its checks' families: blackbox, cache, defaults, faults, purge, rule, security)."),
])
def test_bad_paths_exit_2_before_anything_starts(args: list[str], message: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["test", str(POLICY), "--skip-missing", *args]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1] == message  # after the policy's warnings
