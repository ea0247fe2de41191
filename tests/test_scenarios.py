"""Tests for user scenarios: loading, error messages, the examples, and the runner.

The runner is exercised against the real sample origin standing in for an engine: requests reach
the origin directly, so nothing is ever cached — expectations on origin counts, status, headers
and response identity hold, and expectations on the cache outcome fail, which proves failures are
reported with their details.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from cachewright.generator import docs
from cachewright.generator.errors import PolicyError
from cachewright.harness.client import Client, Identity
from cachewright.harness.origin import OriginClient, OriginConfig, OriginServer
from cachewright.harness.runtime.api import Endpoint
from cachewright.harness.scenarios import (
    SCENARIO_FILE,
    Expect,
    HeaderExpectations,
    OriginRule,
    Request,
    ScenarioError,
    Step,
    load_scenarios,
    loads_scenarios,
    run_scenario,
    run_scenarios,
)

ROOT = Path(__file__).resolve().parent.parent
# every example, fleets too (their scenarios run through the fleet's front: tests/test_fleet_*.py)
EXAMPLES = sorted(p for p in (ROOT / "examples").iterdir() if (p / "policy.yaml").is_file())


def errors(text: str) -> list[str]:
    """The problems ``text`` has, one line each."""
    with pytest.raises(ScenarioError) as caught:
        loads_scenarios(text, "s.yaml")
    return str(caught.value).splitlines()


# --------------------------------------------------------------------------- loading


def test_loads_a_full_scenario() -> None:
    (scenario,) = loads_scenarios("""\
version: 1
scenarios:
  - name: cart
    description: the cart is never cached
    engines: [varnish]
    tags: [smoke]
    origin:
      - path: /cart/{run}
        cache_control: max-age=60
        set_cookie: sid=1
        headers: {X-Extra: "a {run}"}
        delay: 1s
    steps:
      - name: first
        method: POST
        path: /cart/{run}?x=1
        headers: {Accept-Language: en}
        cookies: {currency: EUR}
        scheme: https
        host: www.example.com
        body: a=1
        from: 127.0.0.2
        expect:
          status: [200, 201]
          cache: bypass
          rule: cart
          origin_delta: 1
          headers: {present: [Date], absent: [Set-Cookie], equal: {Vary: Cookie},
                    contains: {Cache-Status: [bypass, cart]}}
      - wait: 2s
      - path: /cart/{run}
        expect: {different_response_from: first, origin_total_delta: 1}
""", "s.yaml")
    assert scenario.name == "cart" and scenario.check_id == "scenario:cart"
    assert scenario.engines == ("varnish",) and scenario.tags == ("smoke",)
    assert scenario.source == "s.yaml:3"
    assert scenario.origin == (OriginRule(path="/cart/{run}", cache_control="max-age=60",
                                          set_cookie=("sid=1",), headers=(("X-Extra", "a {run}"),),
                                          delay=1),)
    first, wait, last = scenario.steps
    assert first == Step(0, "first", Request("POST", "/cart/{run}?x=1", (("Accept-Language", "en"),),
                                             (("currency", "EUR"),), "https", "www.example.com", "a=1",
                                             "127.0.0.2"),
                         Expect((200, 201), ("bypass",), "cart", 1, None, None, None,
                                HeaderExpectations(("Date",), ("Set-Cookie",), (("Vary", "Cookie"),),
                                                   (("Cache-Status", ("bypass", "cart")),))))
    assert wait == Step(1, wait=2) and wait.label == "step 2"
    assert last.request == Request(target="/cart/{run}")
    assert last.expect == Expect(origin_total_delta=1, different_response_from="first")
    assert first.label == "step 1 'first'" and first.request is not None
    assert first.request.origin_path == "/cart/{run}"


def test_defaults() -> None:
    (scenario,) = loads_scenarios("scenarios: [{name: a, steps: [{path: /}]}]")
    assert scenario.engines == ("nginx", "varnish")
    assert scenario.description == "" and scenario.origin == () and scenario.tags == ()
    assert scenario.steps == (Step(0, None, Request(), Expect()),)


def test_origin_rule_spec_substitutes_the_token() -> None:
    rule = OriginRule(pattern="/p/{run}/*", set_cookie=("a={run}",), headers=(("X-A", "{run}"),),
                      status=503, failure="error")
    assert rule.spec("tok") == {"pattern": "/p/tok/*", "status": 503, "set_cookie": ["a=tok"],
                                "failure": "error", "headers": {"X-A": "tok"}}


def test_field_errors_read_like_policy_errors() -> None:
    assert errors("""\
scenarios:
  - name: Cart
    steps:
      - path: cart
        method: get
        scheme: ftp
        expect: {cache: hitt, status: 700, origin_delta: -1, headers: {present: [Bad Name]}}
      - wait: 10 seconds
        from: 300.1.1.1
    engine: [nginx]
""") == [
        "s.yaml:2:11: scenarios[0].name: \"Cart\" is not valid (lowercase letters, digits, '-' and '_', "
        "starting with a letter)",
        's.yaml:4:15: scenarios[0].steps[0].path: "cart" is not a request target (expected '
        "/path?query, http://host/path or *)",
        's.yaml:5:17: scenarios[0].steps[0].method: "get" is not valid (an uppercase method name '
        "such as GET or PURGE)",
        's.yaml:6:17: scenarios[0].steps[0].scheme: "ftp" is not one of: http, https',
        's.yaml:7:25: scenarios[0].steps[0].expect.cache: "hitt" is not one of: hit, miss, bypass, stale',
        "s.yaml:7:39: scenarios[0].steps[0].expect.status: 700 is out of range (an integer from 100 "
        "to 599)",
        "s.yaml:7:58: scenarios[0].steps[0].expect.origin_delta: -1 is out of range (an integer from "
        "0 to 100000)",
        's.yaml:7:82: scenarios[0].steps[0].expect.headers.present[0]: "Bad Name" is not valid (an '
        "HTTP header name such as X-Api-Version)",
        's.yaml:8:15: scenarios[0].steps[1].wait: "10 seconds" is not a duration (examples: 10s, 5m, '
        "1h30m, 30d)",
        's.yaml:9:15: scenarios[0].steps[1].from: "300.1.1.1" is not an IP address',
        "s.yaml:10:5: scenarios[0].engine: unknown key 'engine' (did you mean 'engines'?)",
    ]


def test_cross_field_errors() -> None:
    assert errors("""\
scenarios:
  - name: a
    origin:
      - {path: /x, pattern: /x*}
      - {path: /y, failure: error, status: 404}
      - {path: /z, body: filler}
    steps:
      - name: first
        path: /x
        expect: {same_response_as: later}
      - {wait: 1s, path: /x, expect: {status: 200}}
      - {name: first, path: /x, cookies: {a: b}, headers: {cookie: c=d}}
      - {name: later, headers: {X-A: b}}
  - name: a
    steps: [{path: /}]
""") == [
        "s.yaml:4:9: scenarios[0].origin[0]: needs exactly one of path and pattern",
        's.yaml:5:36: scenarios[0].origin[1].status: 404 with failure "error" (expected a 5xx status)',
        's.yaml:6:20: scenarios[0].origin[2].body: body "filler" needs body_size',
        "s.yaml:10:18: scenarios[0].steps[0].expect.same_response_as: 'later' is not the name of an "
        "earlier request step (earlier: none)",
        "s.yaml:11:10: scenarios[0].steps[1].wait: a wait step takes no request fields (found: path, "
        "expect)",
        "s.yaml:12:10: scenarios[0].steps[2].name: step 'first' is already defined (steps[0])",
        "s.yaml:12:33: scenarios[0].steps[2].cookies: give cookies or a Cookie header, not both",
        "s.yaml:13:9: scenarios[0].steps[3]: a step needs either path (a request) or wait (a pause)",
        "s.yaml:14:5: scenarios[1].name: scenario 'a' is already defined (scenarios[0])",
    ]


@pytest.mark.parametrize(("text", "message"), [
    ("", "s.yaml:1:1: the scenario file is empty (expected a mapping with scenarios: [...])"),
    ("scenarios: [", "s.yaml:1:13: invalid YAML: expected the node content, but found '<stream end>'"),
    ("scenarios:\n  - name: a\x07b\n", 's.yaml:2:12: invalid YAML: unprintable character #x0007 (expected '
     'printable text; inside double quotes write it as "\\x07")'),
    ("- name: a", 's.yaml:1:1: a list is not a mapping (scenario file)'),
    ("version: 2\nscenarios: []", "s.yaml:1:10: version: 2 is out of range (an integer from 1 to 1)"),
    ("scenarios: []", "s.yaml:1:12: scenarios: needs at least 1 item(s)"),
    ("scenarios: [{name: a}]", "s.yaml:1:13: scenarios[0]: missing required key 'steps'"),
    ("scenarios: [{name: a, steps: [{path: /a/{run}/b}]}]",
     "s.yaml:1:41: invalid YAML: expected ',' or '}', but got '{' (inside {...} or [...], quote a "
     'value containing {run}: "/p/{run}")'),
])
def test_file_level_errors(text: str, message: str) -> None:
    assert errors(text)[0] == message


def test_error_is_a_policy_error_with_its_own_summary(tmp_path: Path) -> None:
    path = tmp_path / "s.yaml"
    path.write_text("scenarios: []\n")
    with pytest.raises(PolicyError) as caught:
        load_scenarios(path)
    assert caught.value.render() == f"{path}:1:12: scenarios: needs at least 1 item(s)\n1 error in scenario file"
    with pytest.raises(ScenarioError, match=r"missing\.yaml:1:1: cannot read scenarios: No such file"):
        load_scenarios(tmp_path / "missing.yaml")


def test_every_example_has_scenarios_that_load() -> None:
    assert [p.name for p in EXAMPLES] == ["api", "fleet-shard", "fleet-shield", "shop", "static-site",
                                          "wordpress"]
    for example in EXAMPLES:
        scenarios = load_scenarios(example / "scenarios.yaml")
        assert 2 <= len(scenarios) <= 4, example.name
        assert all(s.description for s in scenarios), example.name


def test_the_docs_list_every_field() -> None:
    text = (ROOT / "docs" / "scenarios.md").read_text()
    for section in docs.sections(SCENARIO_FILE):
        for key in section.obj.fields:
            path = f"{section.path}.{key}" if section.path else key
            assert f"| `{path}` |" in text, path


def test_examples_in_the_docs_load() -> None:
    docs = (ROOT / "docs" / "scenarios.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", docs, re.S)
    complete = [b for b in blocks if b.startswith(("version:", "scenarios:"))]
    assert len(complete) >= 2
    for block in complete:
        assert loads_scenarios(block, "docs/scenarios.md")


# --------------------------------------------------------------------------- running


@dataclass
class OriginAsEngine:
    """A ScenarioContext whose "engines" are the sample origin itself (no cache at all)."""

    server: OriginServer
    origin: OriginClient
    log_calls: list[str] = field(default_factory=list)

    def client(self, engine: str) -> Client:
        endpoint = Endpoint(engine, "127.0.0.1", self.server.data_port, None)
        return Client(endpoint, "shop.example.com")

    def logs(self, engine: str, lines: int = 40) -> str:
        self.log_calls.append(engine)
        return f"{engine}: the last log line"

    def stored_count(self, engine: str, path: str) -> int:
        return 0  # no cache: a miss never settles (the origin never says "miss" anyway)


@pytest.fixture(scope="module")
def ctx() -> Iterator[OriginAsEngine]:
    with OriginServer(OriginConfig(log_size=200)) as server, OriginClient(server.control_url) as origin:
        yield OriginAsEngine(server, origin)


PASSING = """\
scenarios:
  - name: passing
    description: everything the origin alone can satisfy
    origin:
      - path: /p/{run}
        cache_control: max-age=60
        set_cookie: sid={run}
        headers: {X-Token: "t-{run}"}
    steps:
      - name: first
        path: /p/{run}?a=1
        cookies: {currency: EUR}
        headers: {Accept-Language: en}
        expect:
          status: 200
          origin_delta: 1
          origin_total_delta: 1
          headers:
            present: [X-Response-Id]
            absent: [Cache-Status]
            equal: {Cache-Control: max-age=60, X-Token: "t-{run}"}
            contains: {Set-Cookie: ["sid=", "{run}"]}
      - wait: 0s
      - name: second
        method: POST
        path: /p/{run}
        body: x={run}
        expect: {status: [200, 201], origin_delta: 1, different_response_from: first}
"""


def test_a_scenario_that_holds_passes(ctx: OriginAsEngine) -> None:
    (scenario,) = loads_scenarios(PASSING, "p.yaml")
    result = run_scenario(scenario, ctx, "nginx", token="tok123")
    assert (result.outcome, result.message, result.details) == ("passed", "", ())
    assert result.check_id == "scenario:passing" and result.engine == "nginx"
    assert result.description == "everything the origin alone can satisfy"
    assert result.tags == ("scenario",) and result.duration > 0
    first, second = ctx.origin.requests(path="/p/tok123")[-2:]
    assert first.target == "/p/tok123?a=1" and first.header("Cookie") == "currency=EUR"
    assert first.header("Host") == "shop.example.com" and first.header("Accept-Language") == "en"
    assert second.method == "POST" and second.body_length == len("x=tok123")
    assert ctx.origin.rules() == []  # the scenario's origin rules are removed afterwards


def test_a_failing_expectation_is_reported_with_the_exchanges(ctx: OriginAsEngine) -> None:
    (scenario,) = loads_scenarios("""\
scenarios:
  - name: cached
    origin: [{path: "/c/{run}", cache_control: max-age=60}]
    steps:
      - {name: first, path: "/c/{run}", expect: {cache: miss}}
      - {name: again, path: "/c/{run}", expect: {cache: hit, origin_delta: 0, same_response_as: first}}
      - {path: /never-sent}
""", "c.yaml")
    result = run_scenario(scenario, ctx, "varnish", token="tokfail")
    assert result.outcome == "failed"
    assert result.message == ("step 1 'first': expected cache miss, got none (Cache-Status: None)")
    text = "\n".join(result.details)
    assert result.details[0] == "scenario cached (c.yaml:2) on varnish, {run} = tokfail"
    assert result.details[1] == 'origin rule: {"path": "/c/tokfail", "cache_control": "max-age=60"}'
    assert re.search(r"^step 1 'first': GET http://shop\.example\.com/c/tokfail -> 200 Cache-Status: "
                     r"None X-Response-Id: \S+ \(\d+ ms\); origin \+1 for /c/tokfail, \+1 in all$",
                     result.details[2])
    assert "  expected cache miss, got none (Cache-Status: None)" in result.details
    assert "    Cache-Control: max-age=60" in result.details  # the failing response's headers
    assert "origin received for /c/tokfail: 1 request(s) (last 5 shown)" in result.details
    assert re.search(r"^  #\d+ GET /c/tokfail -> 200 \(ok\) id \S+$", text, re.M)
    assert result.details[-2:] == ("varnish log (last 20 lines):", "  varnish: the last log line")
    assert "never-sent" not in text  # the scenario stops at the first failing step
    assert ctx.origin.rules() == []


def test_every_failed_expectation_of_a_step_is_listed(ctx: OriginAsEngine) -> None:
    (scenario,) = loads_scenarios("""\
scenarios:
  - name: many
    steps:
      - {name: first, path: "/m/{run}"}
      - name: again
        path: /m/{run}
        expect:
          status: 404
          cache: [hit, stale]
          rule: pages
          origin_delta: 0
          same_response_as: first
          headers: {present: [Age], absent: [X-Response-Id], equal: {Content-Type: text/html},
                    contains: {Content-Type: [json, html]}}
""", "m.yaml")
    result = run_scenario(scenario, ctx, "nginx", token="tokmany")
    assert result.message == "step 2 'again': expected status 404, got 200 (and 8 more)"
    expected = [line for line in result.details if line.startswith("  expected ")]
    assert [re.sub(r"[0-9a-f]{8}-\d{6}", "ID", line) for line in expected] == [
        "  expected status 404, got 200",
        "  expected cache hit or stale, got none (Cache-Status: None)",
        "  expected rule pages, got none (Cache-Status: None)",
        "  expected the origin to receive 0 requests for /m/tokmany, got 1",
        "  expected the same response as 'first' (X-Response-Id ID), got X-Response-Id ID",
        "  expected header Age to be present, it is absent",
        "  expected header X-Response-Id to be absent, got X-Response-Id: ID",
        "  expected header Content-Type: text/html, got Content-Type: application/json",
        "  expected header Content-Type to contain 'html', got Content-Type: application/json",
    ]


def test_an_unreachable_engine_fails_with_the_error(ctx: OriginAsEngine) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    class Closed(OriginAsEngine):
        def client(self, engine: str) -> Client:
            return Client(Endpoint(engine, "127.0.0.1", port, None), "shop.example.com")

    (scenario,) = loads_scenarios("scenarios: [{name: down, steps: [{name: only, path: /d}]}]")
    result = run_scenario(scenario, Closed(ctx.server, ctx.origin), "nginx")
    assert result.outcome == "failed"
    assert result.message.startswith("step 1 'only': request failed: ConnectionRefusedError:")
    assert result.details[-1] == "  nginx: the last log line"


def test_a_scenario_runs_only_on_the_engines_it_names(ctx: OriginAsEngine) -> None:
    """Not selected for the other engines: no result there (a skip would make a run
    incomplete); asked for one directly, it says why it did not run."""
    scenarios = loads_scenarios("""\
scenarios:
  - {name: only-varnish, engines: [varnish], tags: [smoke], steps: [{path: "/v/{run}"}]}
  - {name: both, steps: [{path: "/b/{run}"}]}
""")
    results = list(run_scenarios(scenarios, ctx, ("nginx", "varnish")))
    assert [(r.check_id, r.engine, r.outcome, r.message) for r in results] == [
        ("scenario:only-varnish", "varnish", "passed", ""),
        ("scenario:both", "nginx", "passed", ""),
        ("scenario:both", "varnish", "passed", ""),
    ]
    assert results[0].tags == ("scenario", "smoke")
    direct = run_scenario(scenarios[0], ctx, "nginx")
    assert (direct.outcome, direct.message) == ("skipped", "runs on varnish only")


def test_origin_received_judges_the_request_the_origin_got(ctx: OriginAsEngine) -> None:
    (scenario,) = loads_scenarios("""\
scenarios:
  - name: received
    steps:
      - path: /r/{run}
        headers: {If-None-Match: '"v1"'}
        cookies: {currency: EUR, session: "s-{run}"}
        expect:
          origin_received:
            headers: {equal: {If-None-Match: '"v1"'}, absent: [Authorization]}
            cookies: {present: [currency], equal: {session: "s-{run}"}}
""")
    assert scenario.needs_origin
    assert run_scenario(scenario, ctx, "nginx", token="tokrecv").outcome == "passed"


def test_origin_received_names_what_the_origin_got_instead(ctx: OriginAsEngine) -> None:
    (scenario,) = loads_scenarios("""\
scenarios:
  - name: received
    steps:
      - path: /r/{run}
        cookies: {currency: EUR, session: s1}
        expect:
          origin_received:
            headers: {present: [If-None-Match]}
            cookies: {absent: [session], equal: {currency: USD}}
""")
    result = run_scenario(scenario, ctx, "nginx", token="tokwrong")
    expected = [line for line in result.details if line.startswith("  expected ")]
    assert expected == [
        "  expected the origin to receive header If-None-Match to be present, it is absent",
        "  expected the origin not to receive cookie session, it received cookies: currency=EUR; session=s1",
        "  expected the origin to receive cookie currency=USD, it received cookies: currency=EUR; session=s1",
    ]


def test_origin_received_needs_a_request_to_reach_the_origin(ctx: OriginAsEngine) -> None:
    (scenario,) = loads_scenarios("""\
scenarios:
  - name: none
    steps:
      - {path: "/n/{run}", expect: {origin_received: {headers: {present: [Host]}}}}
""")

    class Nowhere(OriginAsEngine):  # answers, but the origin's count does not move
        def client(self, engine: str) -> Client:
            return Client(Endpoint(engine, "127.0.0.1", self.server.control_port, None), "h")

    result = run_scenario(scenario, Nowhere(ctx.server, ctx.origin), "nginx", token="toknone")
    assert "  expected the origin to receive a request for /n/toknone, it received none" in result.details


def test_same_response_as_uses_the_chosen_identity(ctx: OriginAsEngine) -> None:
    """With an ETag as identity (a user's app without --response-id-header), two answers of the
    same content are the same response; with X-Response-Id they are not."""
    (scenario,) = loads_scenarios("""\
scenarios:
  - name: etag
    origin: [{path: "/e/{run}", etag: v1}]
    steps:
      - {name: first, path: "/e/{run}"}
      - {name: again, path: "/e/{run}", expect: {same_response_as: first}}
""")
    assert run_scenario(scenario, ctx, "nginx", identity=Identity()).outcome == "passed"
    result = run_scenario(scenario, ctx, "nginx", token="tokid")
    assert re.fullmatch(r"step 2 'again': expected the same response as 'first' \(X-Response-Id "
                        r"\S+\), got X-Response-Id \S+", result.message)
    missing = run_scenario(scenario, ctx, "nginx", identity=Identity("X-Request-Id"))
    assert missing.message == ("step 2 'again': expected the same response as 'first' "
                               "(no X-Request-Id), got no X-Request-Id")


def test_each_run_gets_its_own_token(ctx: OriginAsEngine) -> None:
    (scenario,) = loads_scenarios('scenarios: [{name: t, steps: [{path: "/t/{run}", expect: {origin_delta: 1}}]}]')
    before = ctx.origin.counts()
    assert run_scenario(scenario, ctx, "nginx").outcome == "passed"
    assert run_scenario(scenario, ctx, "nginx").outcome == "passed"
    new_paths = {p for p in ctx.origin.counts().paths if p not in before.paths and p.startswith("/t/")}
    assert len(new_paths) == 2 and all(re.fullmatch(r"/t/[0-9a-f]{12}", p) for p in new_paths)
