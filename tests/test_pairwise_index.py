"""The indexes that keep a large policy's checks near-linear find what comparing every pair of
rules finds: the trailing-slash warning's first taker (generator/load.py), the rules a
reachability check compares (generator/reach.py) and the Varnish rules whose hits rewrite
Cache-Status (generator/varnish_rules.py), on random rule sets with many related paths."""

from __future__ import annotations

import re
import warnings
from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policies import PATH_PREFIX, regexes

from cachewright.generator import load, reach, varnish_rules
from cachewright.generator.model import ExtraKey, KeyPart, Match, Policy, Rule, ValueMatch

SETTINGS = settings(max_examples=300, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow])
# Stems that start one another, escapes in both hex cases: most pairs are related somehow.
STEMS = ["/", "/a", "/a/", "/a/b", "/a/b/", "/ab", "/ab/", "/a%2F", "/a%2f/", "/a%2Fx/", "/b",
         "/b/", "/b/c/", "/p1/", "/p10/"]
FIXED_REGEXES = ["^/a/[0-9]+$", "^/a", "^/ab/", "(?i)^/A/", r"\.php$", "^/p1/[0-9]+", "/b/",
                 "^/a(?:/b)$", "^/a%2[Ff]", "^blog/", ".*"]
BASE = load.loads("version: 1\nname: t\norigin: {url: http://app:8000}\nrules:\n"
                  "  - {name: x, match: {path_prefix: /x/}}\n", "p.yaml")


def _valid(regex: str) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            re.compile(regex)
    except re.error:
        return False
    return True


KEYS: list[tuple[KeyPart, ...]] = [("scheme", "host", "path", "query"), ("path", "query")]
PATHS = st.one_of(st.sampled_from(STEMS), PATH_PREFIX)
REGEXES = st.one_of(st.sampled_from(FIXED_REGEXES), regexes().filter(_valid))
VALUES = st.lists(st.builds(ValueMatch, st.sampled_from(["X-V", "x-v", "S"]), st.none() | st.just("^2")),
                  max_size=1)


@st.composite
def matches(draw: st.DrawFn) -> Match:
    literal = draw(st.none() | PATHS)
    exact = literal is not None and draw(st.integers(0, 3)) == 0
    return Match(
        path_prefix=None if exact else literal,
        path=literal if exact else None,
        path_regex=draw(st.none() | REGEXES) if draw(st.integers(0, 2)) == 0 else None,
        extensions=draw(st.sampled_from([(), (), ("png",), ("css", "js")])),
        methods=draw(st.sampled_from([(), (), ("GET", "HEAD"), ("POST",)])),
        hosts=draw(st.sampled_from([(), (), ("a.example",), ("b.example",), ("*.example",)])),
        headers=tuple(draw(VALUES)) if draw(st.integers(0, 3)) == 0 else (),
        cookies=tuple(draw(VALUES)) if draw(st.integers(0, 4)) == 0 else (),
    )


@st.composite
def policies(draw: st.DrawFn) -> Policy:
    found = draw(st.lists(st.tuples(matches(), st.booleans()), min_size=1, max_size=25))
    rules = tuple(Rule(f"r{i}", i, m, cache, None, "respect", False, (), ExtraKey(), None)
                  for i, (m, cache) in enumerate(found))
    default = replace(BASE.default_rule, index=len(rules))
    key = draw(st.sampled_from(KEYS))
    return replace(BASE, rules=rules, default_rule=default, cache=replace(BASE.cache, key=key))


@SETTINGS
@given(policies(), st.lists(PATHS, max_size=5))
def test_the_first_taker_of_a_path_is_the_first_rule_taking_it(policy: Policy, extra: list[str]) -> None:
    takers = load._Takers(policy.rules)
    literals = [m.path_prefix or m.path for m in (r.match for r in policy.rules)]
    tried = {*extra, *(p for p in literals if p), *(p[:-1] for p in literals if p and len(p) > 1)}
    for rule in policy.rules:
        for path in tried:
            slow = next((r for r in policy.rules if r is not rule and load._takes(r.match, path)), None)
            assert takers.first(path, rule) is slow, (path, rule)


@SETTINGS
@given(policies())
def test_reachability_compares_the_rules_comparing_every_pair_would(policy: Policy) -> None:
    earlier = reach._Earlier()
    seen: list[tuple[Rule, reach.PathCond]] = []
    for rule in policy.rules:
        cond = reach.path_cond(rule.match)
        slow = [(r, c) for r, c in seen if reach._compatible(c.head, cond.head)
                and reach.others_cover(r.match, rule.match)]
        fast = earlier.covering(rule.match, cond.head)
        assert fast == slow, rule
        earlier.add(rule, cond)
        seen.append((rule, cond))


@SETTINGS
@given(policies())
def test_restatus_rules_are_those_comparing_every_pair_finds(policy: Policy) -> None:
    key = policy.cache.key
    cacheable = [r for r in (*policy.rules, policy.default_rule) if r.cache]
    beyond = [r for r in cacheable if varnish_rules._matches_beyond_key(r.match, key)]
    slow = tuple(r.name for r in cacheable
                 if any(r is o or varnish_rules._may_overlap(r.match, o.match, key) for o in beyond))
    assert varnish_rules.restatus_rules(policy) == slow


@SETTINGS
@given(matches(), PATHS, st.sampled_from(["", "zq9", "zq9.png", "/x.css", "1/"]))
def test_a_condition_accepts_only_paths_starting_with_its_head(match: Match, path: str, tail: str) -> None:
    """What lets reachability skip rules by head (``_Heads``, ``_union_covers``)."""
    cond = reach.path_cond(match)
    if reach._accepts(cond, path + tail):
        assert (path + tail).startswith(cond.head)


@SETTINGS
@given(matches(), PATHS, st.sampled_from([(), ("png",)]))
def test_a_prefix_leaving_a_head_is_not_contained(match: Match, prefix: str, exts: tuple[str, ...]) -> None:
    """What lets reachability skip the containment test of such a pair (``_check_rule``)."""
    other = reach.path_cond(match)
    cond = reach.path_cond(Match(path_prefix=prefix, extensions=exts))
    if cond.shape and not cond.head.startswith(other.head):
        assert reach.contains(other, cond) is False
