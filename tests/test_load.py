"""Loading and validation: the exact messages of the common mistakes, all reported at once."""

from __future__ import annotations

import textwrap

import pytest

from cachewright.generator.errors import PolicyError
from cachewright.generator.load import covers, loads
from cachewright.generator.model import Match

BASE = """\
version: 1
name: shop
origin: {url: http://app:8000}
"""


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        loads(textwrap.dedent(text), "policy.yaml")
    return str(info.value).splitlines()


def test_minimal_policy_gets_safe_defaults() -> None:
    policy = loads(BASE, "policy.yaml")
    assert policy.cache.key == ("scheme", "host", "path", "query")
    assert policy.cache.origin_headers == "respect"
    assert policy.purge is None
    assert policy.listen.http is not None and policy.listen.http.port == 80
    assert policy.default_rule.name == "default"


def test_invalid_yaml_points_at_the_line() -> None:
    (found,) = problems(BASE + "rules: [\n")
    # libyaml's wording ("did not find expected node content") or PyYAML's own
    assert found.startswith("policy.yaml:5:1: invalid YAML: ") and "node content" in found


def test_empty_file() -> None:
    assert problems("") == ["policy.yaml:1:1: the policy is empty (expected a mapping with version, "
                            "name, origin, ...)"]


def test_unknown_key_suggests_the_closest() -> None:
    assert problems(BASE + "rules:\n  - name: a\n    match: {path_prefix: /a}\n    tll: 5m\n") == [
        "policy.yaml:7:5: rules[0].tll: unknown key 'tll' (did you mean 'ttl'?)"]


def test_unknown_key_without_close_match_lists_the_keys() -> None:
    assert problems(BASE + "zzz: 1\n") == [
        "policy.yaml:4:1: zzz: unknown key 'zzz' (expected one of: version, name, origin, listen, "
        "cache, rules, purge, headers, accept_missing, nginx, fleet)"]


def test_bad_duration() -> None:
    assert problems(BASE + "rules:\n  - name: a\n    match: {path_prefix: /a}\n    ttl: 10 minutes\n") == [
        'policy.yaml:7:10: rules[0].ttl: "10 minutes" is not a duration (examples: 10s, 5m, 1h30m, 30d)']


def test_wrong_type() -> None:
    assert problems(BASE + "cache: {collapse_requests: maybe}\n") == [
        'policy.yaml:4:28: cache.collapse_requests: "maybe" is not true or false']


def test_missing_required_key() -> None:
    assert problems("version: 1\nname: shop\n") == [
        "policy.yaml:1:1: (top level): missing required key 'origin'"]


def test_every_error_is_reported_at_once_in_file_order() -> None:
    found = problems(BASE + "cache: {size: huge, default_ttl: soon}\nrules: 3\n")
    assert [line.split(": ")[1] for line in found] == ["cache.size", "cache.default_ttl", "rules"]


def test_shadowed_rule_is_unreachable() -> None:
    text = BASE + textwrap.dedent("""\
        rules:
          - name: static
            match: {path_prefix: /static/}
          - name: images
            match: {path_prefix: /static/img/}
        """)
    assert problems(text) == [
        "policy.yaml:8:5: rules[1].match: rule 'images' can never match: rule 'static' (rules[0]) "
        "matches every request it matches (move it before 'static' or narrow 'static')"]


def test_contradictory_rule() -> None:
    text = BASE + "rules:\n  - name: a\n    match: {path_prefix: /a}\n    cache: false\n    ttl: 5m\n"
    assert problems(text) == [
        "policy.yaml:8:5: rules[0].ttl: contradicts cache: false (an uncached rule has no ttl)"]


def test_duplicate_rule_names() -> None:
    text = BASE + textwrap.dedent("""\
        rules:
          - {name: a, match: {path_prefix: /a}}
          - {name: a, match: {path_prefix: /b}}
        """)
    assert problems(text) == [
        "policy.yaml:6:6: rules[1].name: 'a' is already the name of rules[0] (expected unique names)"]


def test_control_characters_are_refused() -> None:
    found = problems(BASE + 'rules:\n  - name: a\n    match: {path_prefix: "/a\\nb"}\n')
    assert found == ["policy.yaml:6:26: rules[0].match.path_prefix: control characters (newline, tab, "
                     "NUL, ...) are not allowed"]


def test_tag_purge_needs_a_tag_header() -> None:
    assert problems(BASE + "purge: {allow: [127.0.0.1/32], kinds: [tag]}\n") == [
        "policy.yaml:4:32: purge.kinds: 'tag' needs a rule with tags_from_header (expected e.g. "
        "tags_from_header: Surrogate-Key)"]


def test_durations_and_sizes_in_human_units() -> None:
    policy = loads(BASE + "cache: {size: 64m, default_ttl: 1h30m, stale: {if_error: 1d}}\n")
    assert policy.cache.size == 64 * 1024 * 1024
    assert policy.cache.default_ttl == 5400
    assert policy.cache.stale.if_error == 86400


@pytest.mark.parametrize(("a", "b", "expected"), [
    (Match(path_prefix="/"), Match(extensions=("css",)), True),
    (Match(path_prefix="/a"), Match(path_prefix="/ab"), True),
    (Match(path_prefix="/ab"), Match(path_prefix="/a"), False),
    (Match(extensions=("css", "js")), Match(extensions=("css",)), True),
    (Match(methods=("GET",)), Match(path_prefix="/a"), False),
    (Match(hosts=("*.example.com",)), Match(hosts=("a.example.com",)), True),
])
def test_covers(a: Match, b: Match, expected: bool) -> None:
    assert covers(a, b) is expected


@pytest.mark.parametrize(("a", "b", "expected"), [
    (Match(path_prefix="/a"), Match(path="/ab"), True),
    (Match(path="/ab"), Match(path_prefix="/ab"), False),
    (Match(path="/"), Match(path="/"), True),
    (Match(path_regex="^/blog/"), Match(path_prefix="/blog/drafts/"), True),
    (Match(path_regex="^/blog/", methods=("GET",)), Match(path_prefix="/blog/drafts/"), False),
    (Match(extensions=("png",)), Match(path="/a.PNG"), True),
])
def test_covers_every_path_condition(a: Match, b: Match, expected: bool) -> None:
    assert covers(a, b) is expected


def test_an_exact_path_loads_and_may_hold_escapes() -> None:
    text = BASE + "rules:\n  - {name: home, match: {path: /}}\n  - {name: e, match: {path: /caf%C3%A9}}\n"
    policy = loads(text, "policy.yaml")
    assert [r.match.path for r in policy.rules] == ["/", "/caf%C3%A9"]


def test_an_exact_path_is_a_path() -> None:
    assert problems(BASE + "rules:\n  - {name: a, match: {path: /a?b=1}}\n") == [
        'policy.yaml:5:29: rules[0].match.path: "/a?b=1" is not valid (a path starting with /, '
        "percent-encoded where needed (e.g. /static/, /my%20files/))"]


def test_named_groups_are_accepted_and_written_plain() -> None:
    text = BASE + "rules:\n  - {name: a, match: {path_regex: '^/(?<slug>[a-z]+)/(?P<id>[0-9]+)$'}}\n"
    assert loads(text, "policy.yaml").rules[0].match.path_regex == "^/(?:[a-z]+)/(?:[0-9]+)$"


def test_cache_keep_defaults_to_a_day_and_is_bounded() -> None:
    assert loads(BASE, "policy.yaml").cache.keep == 86400
    assert loads(BASE + "cache: {keep: 0}\n", "policy.yaml").cache.keep == 0
    assert problems(BASE + "cache: {keep: 31d}\n") == [
        "policy.yaml:4:15: cache.keep: 31d is too long (at most 30d)"]


def test_relax_is_for_respecting_rules_where_the_deviation_is_in_force() -> None:
    found = problems(BASE + """\
rules:
  - name: a
    match: {path_prefix: /a/}
    ttl: 1m
    origin_headers: override
    relax: [set-cookie]
  - name: b
    match: {path_prefix: /b/}
    strip_cookies: true
    relax: [request-cookie, set-cookie]
  - name: c
    match: {path_prefix: /c/}
    key: {headers: [Authorization]}
    relax: [authorization-lookup]
  - name: d
    match: {path_prefix: /d/}
    cache: false
    relax: [request-cookie]
""")
    assert found == [
        "policy.yaml:9:5: rules[0].relax: applies to rules that respect origin headers (what RFC "
        "9111 allows depends on the origin's Cache-Control; remove relax or origin_headers: override)",
        "policy.yaml:13:13: rules[1].relax[0]: request-cookie is not in force for this rule: "
        "strip_cookies removes the cookies",
        "policy.yaml:13:29: rules[1].relax[1]: set-cookie is not in force for this rule: "
        "strip_cookies removes Set-Cookie",
        "policy.yaml:17:13: rules[2].relax[0]: authorization-lookup is not in force for this rule: "
        "key.headers holds Authorization (each token has its own entry)",
        "policy.yaml:21:5: rules[3].relax: contradicts cache: false (an uncached rule has no relax)"]


def test_relaxing_a_cookie_deviation_is_a_warning() -> None:
    policy = loads(BASE + """\
rules:
  - name: shared
    match: {path_prefix: /s/}
    relax: [set-cookie]
""", "policy.yaml")
    assert policy.rules[0].relax == ("set-cookie",)
    assert any("stores responses with Set-Cookie" in w for w in policy.warnings)


def test_relaxing_request_no_cache_is_a_warning() -> None:
    policy = loads(BASE + """\
rules:
  - name: news
    match: {path_prefix: /news/}
    relax: [request-no-cache]
""", "policy.yaml")
    assert policy.rules[0].relax == ("request-no-cache",)
    assert [w for w in policy.warnings if "no-cache" in w] == [
        "policy.yaml:7:5: rules[0].relax: warning: rule 'news' sends every request with "
        "Cache-Control: no-cache or max-age=0 to the origin (any client can, e.g. a browser's "
        "reload: a popular URL's reloads all reach the origin)"]


def test_relaxing_heuristic_freshness_with_a_ttl_is_moot() -> None:
    assert problems(BASE + """\
rules:
  - name: docs
    match: {path_prefix: /docs/}
    ttl: 1m
    relax: [heuristic-freshness]
""") == ["policy.yaml:8:13: rules[0].relax[0]: heuristic-freshness is not in force for this "
         "rule: the rule's ttl is the lifetime of a response that gives none"]


def test_njs_is_an_nginx_option_off_by_default() -> None:
    from cachewright.generator.pipeline import compile_policy

    plain = loads(BASE, "policy.yaml")
    opted = loads(BASE + "nginx: {njs: true}\n", "policy.yaml")
    assert (plain.nginx.njs, opted.nginx.njs) == (False, True)
    files = {p: {f.path: f.text for f in compile_policy(x, ("nginx",)).files} for p, x in
             (("plain", plain), ("opted", opted))}
    assert set(files["plain"]) == {"nginx/nginx.conf"}
    assert "js_" not in files["plain"]["nginx/nginx.conf"]
    assert set(files["opted"]) == {"nginx/nginx.conf", "nginx/cachewright.js"}
    conf = files["opted"]["nginx/nginx.conf"]
    assert "load_module /usr/lib/nginx/modules/ngx_http_js_module.so;" in conf
    assert "js_import cw from cachewright.js;" in conf and "js_header_filter cw.respond;" in conf
    assert problems(BASE + "nginx: {njs: yes please}\n") == [
        'policy.yaml:4:14: nginx.njs: "yes please" is not true or false']
