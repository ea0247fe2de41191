"""The pure-Python rule selector and the probes built from it (``harness/selection/``), and the regex
example generator under them (``harness/selection/regexgen.py``).

Every rule of every example policy, and of hand-written tricky policies, gets a probe that
``select_rule`` maps back to it, or is listed below as genuinely unreachable.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from cachewright.generator import lower_nginx, reach
from cachewright.generator.language import PATH
from cachewright.generator.load import load, loads
from cachewright.generator.lower_nginx import NginxModel
from cachewright.generator.model import Policy, Rule
from cachewright.harness.engines import nginx_explain
from cachewright.harness.origin import MARKERS, unit_of
from cachewright.harness.selection import (
    TAG_PARAMS,
    Request,
    engine_host,
    example,
    isolated,
    matches,
    other_probe,
    overlap_probe,
    probe_for,
    select_rule,
    tagged_path,
    unmarked,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(ROOT.glob("examples/*/policy.yaml"))
TAG = "cw-1a2b"
HOST = "probe.test"


def make_policy(rules: list[dict[str, Any]], hosts: tuple[str, ...] = (),
                ignore: tuple[str, ...] = (), key: tuple[str, ...] | None = None,
                unreachable: bool = False) -> Policy:
    """A minimal valid policy around ``rules`` (``unreachable``: rules load rejects as never
    matching are kept, to test that no probe is found for them)."""
    if unreachable:
        with mock.patch("cachewright.generator.reach.check", return_value=reach.Findings()):
            return make_policy(rules, hosts, ignore, key)
    doc = {
        "version": 1,
        "name": "t",
        "origin": {"url": "http://app:8000"},
        "listen": {"http": {"port": 80}, "hosts": list(hosts)},
        "cache": {"query": {"ignore": list(ignore)}, **({"key": list(key)} if key else {})},
        "rules": [{"cache": False, **rule} for rule in rules],
    }
    return loads(yaml.safe_dump(doc, sort_keys=False), "<test>")


def rule(name: str, **match: Any) -> dict[str, Any]:
    return {"name": name, "match": match}


# name -> (policy, rules for which no probe exists, and why)
TRICKY: dict[str, tuple[Policy, dict[str, str]]] = {
    "regex": (make_policy([
        rule("numeric", path_regex=r"^/p/[0-9]+$"),
        rule("profile", path_regex=r"^/u/[^/]+/profile$"),
        rule("caseless", path_regex=r"(?i)^/CaseY/"),
        rule("php", path_regex=r"\.(?:php|asp)$"),
        rule("digits", path_regex=r"^/a(?:b|c)d/\d{3}/"),
        rule("not-admin", path_regex=r"^/x/(?!admin)[a-z]+"),
        rule("alternation", path_regex=r"^/(?:en|de|fr)(?:-[A-Z]{2})?/docs/"),
        rule("escapes", path_regex=r"^/v\d+\.\d+/[\w-]+\.json$"),
        rule("impossible", path_regex=r"a^b"),
        rule("contradiction", path_prefix="/b/", path_regex=r"^/c/"),
        rule("no-path-has-query", path_regex=r"\?"),
        rule("api", path_regex=r"^/api/"),
        rule("shadowed", path_prefix="/api/v2/"),
    ], unreachable=True), {"impossible": "a^b matches nothing", "contradiction": "prefix /b/ vs ^/c/",
                           "no-path-has-query": "the raw path never holds '?'",
                           "shadowed": "every /api/v2/ path is taken by api (load rejects it)"}),
    "extensions": (make_policy([
        rule("static-png", path_prefix="/static/", extensions=["png"]),
        rule("static", path_prefix="/static/"),
        rule("images", extensions=["png", "JPG", "webp"]),
        rule("dotted-prefix", path_prefix="/v1.2/", extensions=["json"]),
        rule("regex-ext", path_regex=r"^/dl/[a-z]+$", extensions=["zip"]),
    ], unreachable=True), {"regex-ext": "the regex ends the path before any extension"}),
    "hosts": (make_policy([
        rule("api", host=["api.example.com"]),
        rule("wild", host=["*.example.com"], path_prefix="/w/"),
        rule("apex-or-wild", host=["example.com", "*.example.org"]),
        rule("everything", path_prefix="/"),
    ], hosts=("example.com", "*.example.com", "*.example.org", "api.example.com")), {}),
    "headers-cookies": (make_policy([
        rule("empty-ok", path_prefix="/e/", header={"name": "X-Empty", "regex": "^$|^a"}),
        rule("version", header={"name": "X-Api-Version", "regex": "^v[2-9]$"}),
        rule("json", header={"name": "Accept", "regex": "(?i)application/(?:[a-z]+\\+)?json"}),
        rule("present", header={"name": "X-Flag"}),
        rule("two-headers", header=[{"name": "X-A", "regex": r"^\d{3}$"}, {"name": "x-a", "regex": "^1"}]),
        rule("session", cookie={"name": "session", "regex": "^[a-f0-9]{32}$"}),
        rule("odd-cookie", cookie={"name": "a.b|c", "regex": "^x+$"}),
        rule("cookie-present", cookie={"name": "seen"}),
        rule("cookie-and-path", path_prefix="/c/", cookie={"name": "lang", "regex": "^(?:en|de)$"}),
        rule("never", header={"name": "X-Bad", "regex": "^\\s"}),
        rule("rest", path_prefix="/"),
    ]), {"never": "a header value never starts with whitespace once sent"}),
    "methods": (make_policy([
        rule("get-root", path_prefix="/", methods=["GET"]),
        rule("head-root", path_prefix="/", methods=["HEAD"]),
        rule("writes", methods=["PUT", "DELETE"]),
        rule("post-api", path_prefix="/api/", methods=["POST"]),
        rule("rest", path_prefix="/"),
    ]), {}),
    "query-tag": (make_policy([
        rule("item", path_regex=r"^/item/\d$"),
    ], ignore=("cw", "utm_*")), {}),
}

CASES = [pytest.param(load(path), {}, id=path.parent.name) for path in EXAMPLES]
CASES += [pytest.param(policy, none, id=name) for name, (policy, none) in TRICKY.items()]
UNREACHABLE_EXAMPLE_DEFAULTS = {"static-site"}  # its rule 'html' matches every path


def check_probe(policy: Policy, target: Rule, request: Request) -> None:
    """A probe is sendable, fresh (holds the tag) and selects ``target``."""
    assert select_rule(policy, request) == target, request
    assert re.fullmatch(PATH, request.path), request
    assert tagged_path(request, TAG) or TAG in request.query, request
    if policy.listen.hosts:
        assert any(re.fullmatch(h.replace(".", r"\.").replace("*", ".+"), engine_host(request.host))
                   for h in policy.listen.hosts), request


@pytest.mark.parametrize(("policy", "none"), CASES)
def test_every_rule_gets_a_probe(policy: Policy, none: dict[str, str]) -> None:
    for target in policy.rules:
        request = probe_for(policy, target, tag=TAG, host=HOST)
        if target.name in none:
            assert request is None, (target.name, request)
        else:
            assert request is not None, target.name
            check_probe(policy, target, request)


@pytest.mark.parametrize(("policy", "none"), CASES)
def test_other_probe_does_not_match(policy: Policy, none: dict[str, str]) -> None:
    for target in policy.rules:
        request = other_probe(policy, target, tag=TAG, host=HOST)
        if request is not None:
            assert not matches(target, request), (target.name, request)
            assert tagged_path(request, TAG) or TAG in request.query


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.parent.name)
def test_default_rule_probe(path: Path) -> None:
    policy = load(path)
    request = probe_for(policy, policy.default_rule, tag=TAG, host=HOST)
    if path.parent.name in UNREACHABLE_EXAMPLE_DEFAULTS:
        assert request is None
    else:
        assert request is not None
        check_probe(policy, policy.default_rule, request)


def by_name(policy: Policy, name: str) -> Rule:
    return next(r for r in policy.rules if r.name == name)


@pytest.mark.parametrize(("policy", "first", "later", "expected"), [
    (load(ROOT / "examples/static-site/policy.yaml"), "assets", "media", f"/assets/{TAG}.png"),
    (load(ROOT / "examples/static-site/policy.yaml"), "media", "html", f"/{TAG}.png"),
    (load(ROOT / "examples/api/policy.yaml"), "search", "v1", None),
    (load(ROOT / "examples/wordpress/policy.yaml"), "uploads", "theme-assets", None),
    (TRICKY["extensions"][0], "static-png", "images", f"/static/{TAG}.png"),
    (TRICKY["extensions"][0], "static", "images", None),
    (TRICKY["hosts"][0], "wild", "everything", f"/w/{TAG}"),
    (TRICKY["methods"][0], "get-root", "post-api", None),
], ids=lambda v: v if isinstance(v, str) else "")
def test_overlap_probe(policy: Policy, first: str, later: str, expected: str | None) -> None:
    a, b = by_name(policy, first), by_name(policy, later)
    request = overlap_probe(policy, a, b, tag=TAG, host=HOST)
    if first == "get-root":  # GET-only vs POST-only: no request is both
        assert request is None
        return
    assert request is not None
    assert matches(a, request) and matches(b, request)
    check_probe(policy, a, request)
    if expected is not None:
        assert request.path == expected


def test_overlap_of_disjoint_rules_is_none() -> None:
    policy = TRICKY["regex"][0]
    assert overlap_probe(policy, by_name(policy, "numeric"), by_name(policy, "profile"),
                         tag=TAG, host=HOST) is None


def test_shadowed_rule_found_by_overlap_probe() -> None:
    policy, _ = TRICKY["regex"]
    request = overlap_probe(policy, by_name(policy, "api"), by_name(policy, "shadowed"),
                            tag=TAG, host=HOST)
    assert request == Request("GET", f"/api/v2/{TAG}", HOST)


def test_probe_shapes() -> None:
    """Paths read naturally: prefix + tag (+ .ext); wildcard hosts made concrete."""
    ext, _ = TRICKY["extensions"]
    hosts, _ = TRICKY["hosts"]
    assert probe_for(ext, by_name(ext, "static"), tag=TAG, host=HOST) == Request("GET", f"/static/{TAG}", HOST)
    assert probe_for(ext, by_name(ext, "images"), tag=TAG, host=HOST) == Request("GET", f"/{TAG}.png", HOST)
    wild = probe_for(hosts, by_name(hosts, "wild"), tag=TAG, host=HOST)
    assert wild == Request("GET", f"/w/{TAG}", "www.example.com")


def test_probe_escapes_earlier_rules() -> None:
    """Conditions of earlier rules that absent values satisfy are defeated with a value."""
    policy = make_policy([rule("empty-ok", path_prefix="/", header={"name": "X-E", "regex": "^$|^a"}),
                          rule("cookie-empty-ok", path_prefix="/", cookie={"name": "c", "regex": "^$"}),
                          rule("later", path_prefix="/b/")])
    request = probe_for(policy, by_name(policy, "later"), tag=TAG, host=HOST)
    assert request == Request("GET", f"/b/{TAG}", HOST, headers=(("X-E", "cw-none"),),
                              cookies=(("c", "cw-none"),))
    methods, _ = TRICKY["methods"]
    assert probe_for(methods, by_name(methods, "head-root"), tag=TAG, host=HOST) == Request(
        "HEAD", f"/{TAG}", HOST)
    rest = probe_for(methods, by_name(methods, "rest"), tag=TAG, host=HOST)
    assert rest is not None and rest.method == "POST"


def test_query_tag_when_path_cannot_hold_it() -> None:
    policy, _ = TRICKY["query-tag"]
    request = probe_for(policy, policy.rules[0], tag=TAG, host=HOST)
    assert request == Request("GET", "/item/0", HOST, query=f"cwtag={TAG}")


@pytest.mark.parametrize("regex", [r"^/static/app\.[0-9a-f]+\.js$", r"^/item/\d+$", r"^/p/[A-Fa-f0-9]{12,}$"])
def test_tag_spelled_to_fit_the_path(regex: str) -> None:
    """A path regex that allows only hex or digits where the tag goes still gets the tag in the
    path (spelled in those characters), so the probe owns its path."""
    policy = make_policy([rule("r", path_regex=regex)])
    request = probe_for(policy, policy.rules[0], tag=TAG, host=HOST)
    assert request is not None and request.query == "" and tagged_path(request, TAG)
    other = probe_for(policy, policy.rules[0], tag=TAG + "x", host=HOST)
    assert other is not None and other.path != request.path


def test_units_and_markers() -> None:
    """The sample origin and the probes agree on the marker parameters and on a request's unit."""
    assert TAG_PARAMS == MARKERS
    marked = Request("GET", "/", HOST, query=f"a=1&cw={TAG}&b=2")
    assert marked.unit == unit_of("/", f"a=1&cw={TAG}&b=2") == f"/?cw={TAG}"
    assert marked.with_query("z=9").query == f"cw={TAG}&z=9"
    assert Request("GET", "/a", HOST, query="x=1").unit == "/a"
    assert unmarked(f"cw={TAG}&x=1") == "x=1"


def test_isolation() -> None:
    """Fresh probes own a cache entry when the tag is in the path or in a kept query parameter."""
    keyed = make_policy([rule("home", path_regex="^/$")])
    unkeyed = make_policy([rule("home", path_regex="^/$")], key=("scheme", "host", "path"))
    for policy, entry in ((keyed, True), (unkeyed, False)):
        request = probe_for(policy, policy.rules[0], tag=TAG, host=HOST)
        assert request is not None and request.unit == f"/?cw={TAG}"
        assert isolated(policy, request, TAG, entry=True) is entry
        assert isolated(policy, request, TAG, entry=False)


def test_host_fallback_to_listen_hosts() -> None:
    policy = make_policy([rule("a", path_prefix="/a/")], hosts=("shop.example.com",))
    request = probe_for(policy, policy.rules[0], tag=TAG, host="unlisted.test")
    assert request is not None and request.host == "shop.example.com"


# --- select_rule semantics ---

SEMANTICS = make_policy([
    rule("host", host=["shop.example.com"], path_prefix="/h/"),
    rule("encoded", path_prefix="/caf%C3%A9/"),
    rule("get", path_prefix="/g/", methods=["GET"]),
    rule("header", header={"name": "X-Mode", "regex": "^$"}, path_prefix="/hd/"),
    rule("present", header={"name": "X-Mode"}, path_prefix="/hp/"),
    rule("cookie", cookie={"name": "id", "regex": "^7$"}),
    rule("raw", path_regex="^/raw/a%2[01]b$"),
])


@pytest.mark.parametrize(("request_", "expected"), [
    (Request("GET", "/h/x", "Shop.Example.COM:8080"), "host"),
    (Request("GET", "/h/x", "shop.example.com."), "host"),
    (Request("GET", "/h/x", "www.shop.example.com"), "default"),
    (Request("GET", "/caf%c3%a9/x", HOST), "encoded"),
    (Request("GET", "/café/x", HOST), "default"),
    (Request("PURGE", "/g/x", HOST), "get"),
    (Request("BAN", "/g/x", HOST), "get"),
    (Request("HEAD", "/g/x", HOST), "default"),
    (Request("GET", "/hd/x", HOST), "header"),
    (Request("GET", "/hd/x", HOST, headers=(("x-mode", "1"),)), "default"),
    (Request("GET", "/hp/x", HOST, headers=(("X-MODE", ""),)), "default"),
    (Request("GET", "/hp/x", HOST, headers=(("X-MODE", "on"),)), "present"),
    (Request("GET", "/", HOST, cookies=(("xid", "7"), ("id", "7"))), "cookie"),
    (Request("GET", "/", HOST, headers=(("Cookie", "a=1;id=7"),)), "cookie"),
    (Request("GET", "/", HOST, cookies=(("id", "77"),)), "default"),
    (Request("GET", "/raw/a%20b", HOST), "raw"),
    (Request("GET", "/raw/a%20b", HOST, query="x=/h/"), "raw"),
    (Request("GET", "/raw/a b", HOST), "default"),
])
def test_select_rule_semantics(request_: Request, expected: str) -> None:
    assert select_rule(SEMANTICS, request_).name == expected


def test_request_rendering() -> None:
    request = Request("GET", "/a", "h.test", query="b=1", headers=(("X-A", "1"), ("Cookie", "z=9")),
                      cookies=(("s", "2"), ("t", "3")))
    assert request.target == "/a?b=1"
    assert request.raw_path == "/a"
    assert request.cookie_header == "z=9; s=2; t=3"
    assert request.cookie("t") == "3"
    assert request.header("x-a") == "1" and request.header("X-B") == ""
    assert request.http_headers() == (("Host", "h.test"), ("X-A", "1"), ("Cookie", "z=9; s=2; t=3"))


# --- regexgen ---

CORPUS = [
    r"^/p/[0-9]+$", r"^$", r"", r"abc", r"^/static/", r"\.(?i:png|jpe?g)$", r"(?i:ABC)", r"(?i)^/CaseY/",
    r"\d{3}", r"^\d{3}-\d{4}$", r"[^/]+", r"^/[^/]+/[^/]+$", r"[a-f0-9]{32}", r"a|b|c", r"^(?:en|de)$",
    r"colou?r", r"x*", r"x+?y", r"(ab){2,3}", r"[\w.-]+@[\w-]+\.[a-z]{2,}", r"\s", r"\S+", r"\W", r"\bword\b",
    r"^\\", r"\$\^\.\*", r"[\]\[]", r"[-a]", r"[^\x00-\x7f]", r"\u00e9", r"\x41", r"(?=x)x+", r"(?<=a)b",
    r"(?!admin)[a-z]+", r"^/x/(?!admin)[a-z]+", r"(a)\1", r"(?:a|)b", r"(?>ab)c", r"a++b", r"\Aab\Z",
    r"^(?:a$|b)c", r"(?=.*\d)[a-z0-9]{4}", r"[[:alpha:]]", r"(?s).", r"(?m)^a$", r"(?x) a b # c",
    r"^/wp-(?:login|cron|signup)\.php", r"/feed/?$", r"[%]", r"[?#/ ]", r"\.(?:php|asp)$",
]
UNSATISFIABLE = [r"a^b", r"$a", r"[^\s\S]", r"(?=x)y", r"(?!)", r"x{5000}", r"(?<!a)(?<=a)b"]


@pytest.mark.parametrize("regex", CORPUS)
def test_example_matches(regex: str) -> None:
    for seed in range(5):
        text = example(regex, seed=seed)
        assert text is not None, (regex, seed)
        assert re.search(regex, text), (regex, seed, text)


@pytest.mark.parametrize("regex", UNSATISFIABLE + [r"(", r"[z-a]", r"*", r"a{2,1}"])
def test_example_none(regex: str) -> None:
    assert example(regex) is None


@pytest.mark.parametrize("depth", [50, 5000])
def test_example_deep_nesting_never_raises(depth: int) -> None:
    assert example("(" * depth + "a" + ")" * depth) in ("a", None)


def test_example_prefers_safe_characters() -> None:
    assert example(r"^/a/[^/]+$") == "/a/a"
    assert example(r"^/x/.$") == "/x/a"
    assert example(r"[^a-z0-9]") == "A"
    assert example(r"[^a-zA-Z0-9]") == "-"
    assert example(r"[/?#%a]") == "a"
    assert example(r"[ /]") == "/"
    assert example(r"[ab]", avoid="a") == "b"
    assert example(r"[a]", avoid="a") == "a"
    assert example(r"\d{3}") == "000"


def test_example_deterministic_per_seed() -> None:
    for regex in CORPUS:
        assert [example(regex, seed=s) for s in range(4)] == [example(regex, seed=s) for s in range(4)]


# A small grammar of regexes: literals, classes, escapes, groups, alternations, repeats, anchors.
ATOMS = st.sampled_from(["a", "b", "/", r"\.", ".", r"\d", r"\w", r"\s", "[a-c]", "[^/]", "[^a-z]",
                         r"\-", "%", "[?#]", "é"])


def _compose(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.lists(children, min_size=1, max_size=4).map("".join),
        st.lists(children, min_size=2, max_size=3).map(lambda xs: "(?:" + "|".join(xs) + ")"),
        st.tuples(children, st.sampled_from(["*", "+", "?", "{2}", "{1,3}", "*?", "{0}"])).map(
            lambda t: f"(?:{t[0]}){t[1]}"),
        children.map(lambda x: f"(?i:{x})"),
        children.map(lambda x: f"({x})"),
        st.tuples(st.sampled_from(["(?=", "(?!", "(?<="]), children).map(lambda t: f"{t[0]}{t[1]})"),
    )


REGEXES = st.tuples(st.sampled_from(["", "^"]), st.recursive(ATOMS, _compose, max_leaves=8),
                    st.sampled_from(["", "$"])).map("".join)


@settings(max_examples=300, deadline=None)
@given(regex=REGEXES, seed=st.integers(0, 50))
def test_example_property(regex: str, seed: int) -> None:
    try:
        re.compile(regex)
    except re.error:
        assert example(regex, seed=seed) is None
        return
    text = example(regex, seed=seed)
    assert text is None or re.search(regex, text)


@settings(max_examples=100, deadline=None)
@given(regex=REGEXES, prefix=st.sampled_from(["/", "/a/", "/b", "/%41/"]))
def test_probe_never_raises(regex: str, prefix: str) -> None:
    try:
        policy = make_policy([rule("r", path_prefix=prefix, path_regex=regex),
                              rule("s", path_regex=regex, header={"name": "X-R", "regex": regex})])
    except Exception:  # a regex the loader refuses is not this test's concern
        return
    for target in policy.rules:
        request = probe_for(policy, target, tag=TAG, host=HOST)
        assert request is None or select_rule(policy, request) == target
        other = other_probe(policy, target, tag=TAG, host=HOST)
        assert other is None or not matches(target, other)


# --- cross-check with the nginx lowering: its selection maps, evaluated with Python's re ---


def nginx_rule(model: NginxModel, request: Request) -> str:
    """The rule ident nginx's dispatch map (``$cw_target``) chooses for ``request``: its regexes
    run in order, first match wins, evaluated with Python's re (PCRE's ``(?<name>`` is Python's
    ``(?P<name>``); a PURGE's rule from the ``$cw_rule`` map."""
    key = nginx_explain.dispatch_key(model, request)
    chosen, _ = nginx_explain.dispatch(model, request, key)
    return chosen.removeprefix("purge-")


@pytest.mark.parametrize(("policy", "none"), CASES)
def test_nginx_selection_agrees(policy: Policy, none: dict[str, str]) -> None:
    model = lower_nginx.lower(policy, (1, 22, 1), "/usr/lib/nginx/modules")
    for target in (*policy.rules, policy.default_rule):
        for build in (probe_for, other_probe):
            request = build(policy, target, tag=TAG, host=HOST)
            if request is not None:
                assert nginx_rule(model, request) == select_rule(policy, request).ident, request


def test_nginx_prefix_overlapping_extension() -> None:
    """A prefix ending in the extension's text (/logo.png + png) matches /logo.png on nginx too."""
    policy = make_policy([rule("logo", path_prefix="/logo.png", extensions=["png"])])
    model = lower_nginx.lower(policy, (1, 22, 1), "/usr/lib/nginx/modules")
    request = Request("GET", "/logo.png", HOST)
    assert select_rule(policy, request).name == "logo"
    assert nginx_rule(model, request) == "r1"
