"""The policy corpus (``tests/corpus.py``): every generated policy loads, and on the real engines
a rotating sample passes every check while a config tampered to break one behaviour fails the
check for it.

The sample's seed is drawn afresh each run and printed (in the test ids and the session header);
``CACHEWRIGHT_CORPUS_SEED=N`` fixes it to reproduce a run. The whole corpus runs in
``benchmarks/corpus/run.py`` (figures in docs/corpus.md).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from corpus import (
    CORPUS_SEED,
    CORPUS_SIZE,
    TRAITS,
    CorpusPolicy,
    corpus,
    generate,
    load_problem,
    run,
    sample_seed,
)
from tampering import tamper

from cachewright.generator.load import loads
from cachewright.harness.checks import derive

SEED = sample_seed()
SAMPLE_SIZE = 10
#: how far into a seed's policies the tampering tests look for a rule to break
SEARCH = 400


# --------------------------------------------------------------------------- the generator


def test_every_corpus_policy_loads_and_compiles(tmp_path: Path) -> None:
    policies = [*corpus(CORPUS_SEED, CORPUS_SIZE), *corpus(SEED, 50)]
    bugs = [f"{p.name}: {problem}" for p in policies
            if (problem := load_problem(p, tmp_path / f"{p.name}.yaml"))]
    assert not bugs, "generator bugs (a generated policy must load):\n" + "\n".join(bugs)


def test_a_policy_is_a_function_of_seed_and_index() -> None:
    assert generate(SEED, 3).text == generate(SEED, 3).text
    assert len({generate(SEED, i).text for i in range(20)}) == 20
    assert f"--seed {SEED} --index 3" in generate(SEED, 3).text.splitlines()[0]


def test_the_corpus_exercises_every_trait_and_stays_small() -> None:
    policies = corpus(CORPUS_SEED, CORPUS_SIZE)
    seen = Counter(t for p in policies for t in p.traits)
    assert set(seen) <= set(TRAITS), f"undeclared traits: {set(seen) - set(TRAITS)}"
    rare = {t: seen[t] for t in TRAITS if seen[t] < 3}
    assert not rare, f"traits in fewer than 3 of {CORPUS_SIZE} policies: {rare}"
    assert max(len(p.doc["rules"]) for p in policies) <= 12


# --------------------------------------------------------------------------- on the engines


@pytest.mark.engine
@pytest.mark.slow
@pytest.mark.parametrize("index", range(SAMPLE_SIZE), ids=lambda i: f"seed{SEED}-{i}")
def test_a_corpus_policy_passes_every_check_on_both_engines(index: int, tmp_path: Path) -> None:
    outcome = run(generate(SEED, index), tmp_path, ["--no-scenarios"], in_process=True)
    where = f"\n(policy: {tmp_path / outcome.policy.name}.yaml)"
    assert not outcome.load_error and not outcome.error, outcome.summary() + where
    failed = [f"FAIL {r['check_id']} [{r['engine']}]: {r['message']}" for r in outcome.failures]
    assert not failed, f"{outcome.policy.name} ({outcome.policy.reproduce}):\n" + "\n".join(failed) + where
    ran = {r["engine"] for r in outcome.results if r["outcome"] == "passed"}
    assert ran == {"nginx", "varnish"}, f"checks passed only on {ran}"


@pytest.mark.engine
@pytest.mark.slow
def test_the_rfc_family_fails_nothing_on_a_corpus_policy(tmp_path: Path) -> None:
    """The conformance report tells the truth on a policy we did not write for it: the first
    policy of this session's sample that derives the rfc family gets no failure on either
    engine (limits and skips say why)."""
    found = next((p for i in range(SAMPLE_SIZE, SEARCH) if _derives_rfc(p := generate(SEED, i))),
                 None)
    assert found is not None, f"no policy of seed {SEED} derives the rfc family"
    outcome = run(found, tmp_path, ["--checks", "rfc", "--no-scenarios"], in_process=True)
    where = f"\n(policy: {tmp_path / found.name}.yaml, {found.reproduce})"
    assert not outcome.load_error and not outcome.error, outcome.summary() + where
    failed = [f"FAIL {r['check_id']} [{r['engine']}]: {r['message']}" for r in outcome.failures]
    assert not failed, "\n".join(failed) + where
    assert {r["engine"] for r in outcome.results if r["outcome"] == "passed"} == {"nginx", "varnish"}


def _derives_rfc(policy: CorpusPolicy) -> bool:
    loaded = loads(policy.text, f"{policy.name}.yaml")
    return any(c.id.startswith("rfc.") for c in derive(loaded, conformance=True))


Edit = Callable[[str, str], str]  # (text, rule name) -> text


@dataclass(frozen=True)
class Tampering:
    """A hand edit that breaks one behaviour of one rule on both engines, and the check that
    must then fail."""

    check: str  # the check id, with NAME for the rule
    wants: Callable[[dict[str, Any]], bool]  # which rules the edit applies to
    nginx: Edit
    varnish: Edit


def _nginx_locations(text: str, rule: str, edit: Callable[[str], str]) -> str:
    """``edit`` applied to the body of each ``location`` the compiler wrote for ``rule``."""
    pattern = re.compile(r"(# cachewright: rule " + re.escape(rule) +
                         r" \([^\n]*\n\s*location @[\w-]+ \{\n)(.*?)(\n\s*\})", re.S)
    return pattern.sub(lambda m: m.group(1) + edit(m.group(2)) + m.group(3), text)


def _nginx_targets(text: str, rule: str) -> list[str]:
    """The ``$cw_target`` values (``r3``, ``r3q``) that select ``rule``'s locations."""
    return re.findall(r"# cachewright: rule " + re.escape(rule) + r" \([^\n]*\n\s*location @([\w-]+) \{",
                      text)


def _vcl_recv_branch(text: str, rule: str, edit: Callable[[str], str]) -> str:
    """``edit`` applied to the statements of ``rule``'s branch of the selection chain."""
    pattern = re.compile(r'(var\.set\("rule", "' + re.escape(rule) + r'"\);\n)(.*?)(\n\s*\} ?(?:elsif|else|$))',
                         re.S)
    return pattern.sub(lambda m: m.group(1) + edit(m.group(2)) + m.group(3), text)


def _drop_lines(pattern: str) -> Callable[[str], str]:
    return lambda body: re.sub(r"\n?[ \t]*" + pattern + r"[^\n]*", "", body)


def _cacheable_with(key: str) -> Callable[[dict[str, Any]], bool]:
    return lambda rule: rule.get("cache", True) is not False and key in rule


def _nginx_no_ttl(text: str, rule: str) -> str:
    return _nginx_locations(text, rule, _drop_lines(r"proxy_cache_valid 200 "))


def _varnish_no_ttl(text: str, rule: str) -> str:
    """Remove the X-Cw-Ttl line of the branch that names ``rule`` (a TTL shared with other
    rules goes for them too)."""
    pattern = re.compile(r'(if \([^\n]*var\.get\("rule"\) == "' + re.escape(rule) +
                         r'"[^\n]*\{)\n\s*set req\.http\.X-Cw-Ttl = "\d+";')
    return pattern.sub(r"\1", text)


def _nginx_cached(text: str, rule: str) -> str:
    return _nginx_locations(text, rule, lambda body: "            proxy_cache cw;\n"
                            "            proxy_cache_valid 200 1h;\n" + body)


def _varnish_cached(text: str, rule: str) -> str:
    return _vcl_recv_branch(text, rule, _drop_lines(r"call cw_pass;"))


def _nginx_cookies_kept(text: str, rule: str) -> str:
    for target in _nginx_targets(text, rule):
        text = re.sub(r"(\n\s*" + re.escape(target) + r') "";', r"\1 $http_cookie;", text)
    return text


def _varnish_cookies_kept(text: str, rule: str) -> str:
    return _vcl_recv_branch(text, rule, _drop_lines(r"unset req\.http\.Cookie;"))


def _nginx_key_part(kind: str) -> Edit:
    """Drop the rule's key part for its first header of ``kind`` (``h`` key header, ``v``
    vary)."""
    def edit(text: str, rule: str) -> str:
        return _nginx_locations(text, rule, lambda body: re.sub(
            r"\\n" + kind + r":[a-z0-9-]+:\$http_[a-z0-9_]+", "", body, count=1))
    return edit


def _varnish_unkeyed(text: str, rule: str) -> str:
    block = re.compile(r'(if \(var\.get\("rule"\) == "' + re.escape(rule) + r'"\) \{\n)(.*?)(\n\s*\})',
                       re.S)
    return block.sub(lambda m: m.group(1) + _drop_lines(r'hash_data\("h:')(m.group(2)) + m.group(3),
                     text, count=1)


def _varnish_no_vary(text: str, rule: str) -> str:
    """Stop merging the rule's Vary header into the response (every profile that merges it)."""
    return re.sub(r'\n\s*set beresp\.http\.Vary = (?:beresp\.http\.Vary \+ ", )?"?[A-Za-z-]+";', "", text)


TAMPERINGS = {
    "ttl-line-removed": Tampering("rule.NAME.ttl", _cacheable_with("ttl"), _nginx_no_ttl,
                                  _varnish_no_ttl),
    "bypass-removed": Tampering("rule.NAME", lambda r: r.get("cache") is False and "methods"
                                not in r["match"], _nginx_cached, _varnish_cached),
    "cookie-strip-removed": Tampering("rule.NAME.strip-cookies", _cacheable_with("strip_cookies"),
                                      _nginx_cookies_kept, _varnish_cookies_kept),
    "key-header-removed": Tampering("rule.NAME.key", lambda r: bool(r.get("key", {}).get("headers")),
                                    _nginx_key_part("h"), _varnish_unkeyed),
    "vary-removed": Tampering("rule.NAME.vary", lambda r: "vary" in r, _nginx_key_part("v"),
                              _varnish_no_vary),
}


def _target(tampering: Tampering) -> tuple[CorpusPolicy, str]:
    """The first policy of this run's seed with a rule the tampering applies to."""
    for index in range(SEARCH):
        policy = generate(SEED, index)
        for rule in policy.doc["rules"]:
            if tampering.wants(rule):
                return policy, rule["name"]
    pytest.fail(f"no policy of seed {SEED} among {SEARCH} has a rule for {tampering.check}")


@pytest.mark.engine
@pytest.mark.parametrize("name", sorted(TAMPERINGS))
def test_a_tampered_config_fails_the_check_it_breaks(name: str, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    tampering = TAMPERINGS[name]
    policy, rule = _target(tampering)
    check = tampering.check.replace("NAME", rule)
    args = ["--checks", check, "--no-scenarios"]
    honest = run(policy, tmp_path, args, in_process=True)
    verdicts = {(r["check_id"], r["engine"]): r["outcome"] for r in honest.results}
    assert {verdicts.get((check, e)) for e in ("nginx", "varnish")} == {"passed"}, honest.summary()

    def edit(path: str, text: str) -> str:
        if path.endswith("nginx.conf"):
            return tampering.nginx(text, rule)
        return tampering.varnish(text, rule) if path.endswith(".vcl") else text

    changed = tamper(monkeypatch, edit)
    broken = run(policy, tmp_path, args, in_process=True)
    assert {Path(p).name for p in changed} >= {"nginx.conf", "default.vcl"}, \
        f"{name} no longer applies to {policy.name} rule {rule}: changed {changed}"
    verdicts = {(r["check_id"], r["engine"]): r["outcome"] for r in broken.results}
    assert {verdicts.get((check, e)) for e in ("nginx", "varnish")} == {"failed"}, \
        f"{name} on {policy.name} rule {rule}: {check} is {verdicts}"
