"""Reachability for every kind of path condition (prefix, exact path, extensions, regex), the
policy's regex dialect, and proof that the accepted regexes mean the same to both engines and to
the Python model (generator/reach.py, generator/paths.py, generator/dialect.py)."""

from __future__ import annotations

import ctypes
import ctypes.util
import itertools
import random
import re
import textwrap
from pathlib import Path

import pytest
import yaml

from cachewright.generator import dialect
from cachewright.generator.errors import PolicyError, VerifyError
from cachewright.generator.load import loads
from cachewright.generator.pipeline import compile_policy
from cachewright.harness.engines.verify import verify
from cachewright.harness.selection import Request, select_rule

BASE = "version: 1\nname: t\norigin: {url: http://app:8000}\n"
NEVER = "can never match"
PARTLY = "is partly shadowed"
UNDECIDED = "is not decided"


def outcome(rules: list[dict[str, object]], extra: str = "") -> tuple[list[str], list[str]]:
    """(errors, warnings) of a policy made of ``rules`` (each gets cache: false unless set)."""
    doc = yaml.safe_dump({"rules": [{"cache": False, **r} for r in rules]}, sort_keys=False)
    try:
        policy = loads(BASE + doc + extra, "p.yaml")
    except PolicyError as exc:
        return [str(p) for p in exc.problems], []
    return [], list(policy.warnings)


def r(name: str, **match: object) -> dict[str, object]:
    return {"name": name, "match": match}


# (earlier rules ..., the rule under test last), what is said about the last rule: NEVER (an
# error), PARTLY or UNDECIDED (a warning), or None (nothing).
CASES: list[tuple[str, list[dict[str, object]], str | None]] = [
    ("prefix in prefix", [r("a", path_prefix="/static/"), r("b", path_prefix="/static/img/")], NEVER),
    ("carve-out before prefix", [r("a", path_prefix="/static/img/"), r("b", path_prefix="/static/")], None),
    ("disjoint prefixes", [r("a", path_prefix="/a/"), r("b", path_prefix="/b/")], None),
    ("regex covers prefix (issue 23)", [r("a", path_regex="^/blog/"), r("b", path_prefix="/blog/drafts/")], NEVER),
    ("regex takes part of a nested prefix", [r("a", path_regex="^/blog/[a-z]+$"),
                                             r("b", path_prefix="/blog/drafts")], PARTLY),
    ("regex covers exact path", [r("a", path_regex="^/blog/"), r("b", path="/blog/x")], NEVER),
    ("narrower regex before prefix", [r("a", path_regex=r"^/blog/.*\.html$"), r("b", path_prefix="/blog/")], None),
    ("caseless regex covers prefix", [r("a", path_regex="(?i)^/BLOG/"), r("b", path_prefix="/blog/x/")], NEVER),
    ("unanchored regex covers exact path", [r("a", path_regex="/feed/?$"), r("b", path="/x/feed")], NEVER),
    ("unanchored regex before a section", [r("a", path_regex="/feed/?$"), r("b", path_prefix="/x/")], None),
    ("class covers a version prefix", [r("a", path_regex="^/api/v[0-9]+/"), r("b", path_prefix="/api/v2/")], NEVER),
    ("broader prefix after a regex", [r("a", path_regex="^/api/v[0-9]+/"), r("b", path_prefix="/api/")], None),
    ("regex in regex", [r("a", path_regex="^/p/[0-9]+$"), r("b", path_regex="^/p/1[0-9]*$")], NEVER),
    ("overlapping regexes, same section", [r("a", path_regex="^/p/[0-9]+$"),
                                           r("b", path_regex="^/p/[0-9a-f]+$")], None),
    ("two prefixes cover an alternation", [r("a", path_prefix="/x/"), r("b", path_prefix="/y/"),
                                           r("c", path_regex="^/(?:x|y)/")], NEVER),
    ("two prefixes and more", [r("a", path_prefix="/x/"), r("b", path_prefix="/y/"),
                               r("c", path_regex="^/(?:x|y|z)/")], None),
    ("one prefix of two", [r("a", path_prefix="/x/"), r("c", path_regex="^/(?:x|y)/")], None),
    ("two extensions cover a regex", [r("a", extensions=["png"]), r("b", extensions=["gif"]),
                                      r("c", path_regex=r"\.(?:png|gif)$")], NEVER),
    ("exact home before ^/$", [r("a", path="/"), r("b", path_regex="^/$")], NEVER),
    ("^/$ before exact home", [r("a", path_regex="^/$"), r("b", path="/")], NEVER),
    ("exact before everything", [r("a", path="/"), r("b", path_prefix="/")], None),
    ("same exact path twice", [r("a", path="/a"), r("b", path="/a")], NEVER),
    ("two exact paths", [r("a", path="/a"), r("b", path="/b")], None),
    ("prefix covers exact path", [r("a", path_prefix="/a"), r("b", path="/ab")], NEVER),
    ("extension covers exact path", [r("a", extensions=["png"]), r("b", path="/logo.PNG")], NEVER),
    ("extension covers caseless regex", [r("a", extensions=["png"]), r("b", path_regex=r"^/img/.*\.PNG$")], NEVER),
    ("lowercase regex leaves uppercase", [r("a", path_regex=r"\.png$"), r("b", extensions=["png"])], None),
    ("escape in either hex case", [r("a", path_prefix="/a%2A/"), r("b", path_regex="^/a%2a/x")], NEVER),
    ("escape of another byte", [r("a", path_prefix="/a%2A/"), r("b", path_regex="^/a%2b/x")], None),
    ("regex and prefix together", [r("a", path_prefix="/shop/", path_regex=r"\.json$"),
                                   r("b", path="/shop/a.json")], NEVER),
    ("GET only leaves POST", [r("a", path_regex="^/blog/", methods=["GET"]), r("b", path_prefix="/blog/d/")], None),
    ("GET covers GET", [r("a", path_regex="^/blog/", methods=["GET", "HEAD"]),
                        r("b", path_prefix="/blog/d/", methods=["GET"])], NEVER),
    ("a header leaves requests without it", [r("a", path_regex="^/blog/", header={"name": "X-A"}),
                                             r("b", path_prefix="/blog/d/")], None),
    ("same header", [r("a", path_regex="^/blog/", header={"name": "X-A"}),
                     r("b", path_prefix="/blog/d/", header={"name": "X-A"})], NEVER),
    ("a host leaves other hosts", [r("a", path_regex="^/blog/", host="a.example.com"),
                                   r("b", path_prefix="/blog/d/")], None),
    ("wildcard host covers a name", [r("a", path_regex="^/blog/", host="*.example.com"),
                                     r("b", path_prefix="/blog/d/", host="a.example.com")], NEVER),
    ("same cookie", [r("a", path_regex="^/blog/", cookie={"name": "s"}),
                     r("b", path_prefix="/blog/d/", cookie={"name": "s"})], NEVER),
    ("a header regex covers a narrower one", [r("a", path_prefix="/api/", header={"name": "X-V", "regex": "^2"}),
                                              r("b", path_prefix="/api/x/", header={"name": "x-v", "regex": r"^2\.1"})],
     NEVER),
    ("a present header covers a regex that needs a value", [r("a", header={"name": "X-V"}),
                                                            r("b", path="/x", header={"name": "X-V", "regex": "^v"})],
     NEVER),
    ("a regex that allows the empty value", [r("a", header={"name": "X-V"}),
                                             r("b", path="/x", header={"name": "X-V", "regex": "^$|^v"})], None),
    ("a narrower header before a broader one", [r("a", path_prefix="/", header={"name": "X-V", "regex": "^2"}),
                                                r("b", path="/x", header={"name": "X-V"})], None),
    ("cookie names are case-sensitive", [r("a", path_prefix="/", cookie={"name": "S"}),
                                         r("b", path="/x", cookie={"name": "s"})], None),
    ("lookahead: not decided", [r("a", path_regex="^/a(?=b)"), r("b", path_prefix="/ab")], UNDECIDED),
    ("negative lookahead: not decided", [r("a", path_regex="^/a(?!x)"), r("b", path_prefix="/ab/")], UNDECIDED),
    ("word boundary elsewhere", [r("a", path_regex=r"\bfoo"), r("b", path_prefix="/x/")], None),
    ("possessive repeat: not decided", [r("a", path_regex="^/a/[a-z]*+$"), r("b", path="/a/b")], UNDECIDED),
    ("same lookahead regex twice", [r("a", path_regex="^/a(?=b)"), r("b", path_regex="^/a(?=b)")], NEVER),
    ("regex anchored elsewhere than /", [r("a", path_regex="^blog/")], NEVER),
    ("conditions that exclude each other", [r("a", path_prefix="/"),
                                            r("b", path_prefix="/b/", path_regex="^/c/")], NEVER),
]


@pytest.mark.parametrize(("rules", "said"), [pytest.param(rules, said, id=name) for name, rules, said in CASES])
def test_each_shadowing_case_is_reported_or_warned(rules: list[dict[str, object]], said: str | None) -> None:
    errors, warnings = outcome(rules)
    last = f"rules[{len(rules) - 1}].match"
    about_last = [m for m in errors + warnings if f" {last}: " in m and "trailing slash" not in m]
    if said is None:
        assert about_last == [], about_last
    else:
        assert len(about_last) == 1 and said in about_last[0], about_last
        assert (about_last[0] in errors) == (said == NEVER)
    assert all(NEVER not in m for m in errors if f" {last}: " not in m), errors  # only the last


def test_the_table_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert {said for _n, _r, said in CASES} == {NEVER, PARTLY, UNDECIDED, None}


def test_issue_23_messages() -> None:
    errors, _ = outcome([r("blog", path_regex="^/blog/"), r("drafts", path_prefix="/blog/drafts/")])
    assert errors == [
        "p.yaml:11:3: rules[1].match: rule 'drafts' can never match: rule 'blog' (rules[0]) matches "
        "every request it matches (move it before 'blog' or narrow 'blog')"]
    _, warnings = outcome([r("blog", path_regex="^/blog/[a-z]+$"), r("drafts", path_prefix="/blog/drafts")])
    assert warnings == [
        "p.yaml:11:3: rules[1].match: warning: rule 'drafts' is partly shadowed: rule 'blog' "
        "(rules[0]) takes requests it matches, such as /blog/drafts (move it before 'blog' or "
        "narrow 'blog')"]


def test_several_rules_together_are_named() -> None:
    errors, _ = outcome([r("x", path_prefix="/x/"), r("y", path_prefix="/y/"), r("c", path_regex="^/(?:x|y)/")])
    assert errors == [
        "p.yaml:15:3: rules[2].match: rule 'c' can never match: rules 'x' (rules[0]), 'y' (rules[1]) "
        "together match every request it matches (move it before 'x' or narrow them)"]


# --- warnings that are not about shadowing ---


def test_a_trailing_slash_leaving_the_bare_path_to_a_caching_rule_is_warned() -> None:
    _, warnings = outcome([r("admin", path_prefix="/admin/")])
    assert warnings == [
        "p.yaml:8:5: rules[0].match.path_prefix: warning: rule 'admin' does not match /admin (no "
        "trailing slash), which goes to the default rule (write path_prefix: /admin to take it "
        "too, or add a rule with path: /admin)"]
    assert outcome([r("admin", path_prefix="/admin/"), r("bare", path="/admin")]) == ([], [])
    cached = [{**r("static", path_prefix="/static/"), "cache": True}]
    assert outcome(cached) == ([], [])  # /static goes to the default rule, which caches too


def test_tags_that_can_never_be_purged_are_warned() -> None:
    tagged = [{**r("api", path_prefix="/api"), "cache": True, "tags_from_header": "Surrogate-Key"}]
    _, warnings = outcome(tagged)
    assert warnings == [
        "p.yaml:9:3: rules[0].tags_from_header: warning: the tags in Surrogate-Key can never be "
        "purged: the policy has no purge section (add purge: {allow: [...], kinds: [tag]}, or "
        "remove tags_from_header)"]
    _, warnings = outcome(tagged, "purge: {allow: [127.0.0.1/32], kinds: [url]}\n")
    assert len(warnings) == 1 and "purge.kinds has no 'tag'" in warnings[0]
    assert outcome(tagged, "purge: {allow: [127.0.0.1/32], kinds: [url, tag]}\n") == ([], [])


def test_compile_prints_policy_warnings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cachewright.harness.cli import main
    policy = tmp_path / "p.yaml"
    policy.write_text(BASE + "rules:\n  - {name: admin, match: {path_prefix: /admin/}, cache: false}\n")
    assert main(["compile", str(policy), "-o", str(tmp_path / "out"), "--target", "varnish"]) == 0
    assert f"{policy}:5:27: rules[0].match.path_prefix: warning: rule 'admin' does not match" in capsys.readouterr().err


# --- no false "can never match" ---

ALPHABET = "ab/."
PATHS = ["/" + "".join(p) for n in range(6) for p in itertools.product(ALPHABET, repeat=n)]
SHAPES = [
    {"path_prefix": "/a"}, {"path_prefix": "/a/"}, {"path_prefix": "/b"}, {"path": "/a"}, {"path": "/"},
    {"extensions": ["b"]}, {"path_regex": "^/a"}, {"path_regex": "^/a/?$"}, {"path_regex": "b$"},
    {"path_regex": "^/(?:a|b)/"}, {"path_regex": "^/a[ab]*$"}, {"path_regex": "/a"},
    {"path_regex": "(?i)^/A"}, {"path_regex": r"^/a/.*\.b$"}, {"path_regex": "^/[ab]{2}"},
    {"path_regex": "a(?=b)"}, {"path_regex": "^/.?$"}, {"path_prefix": "/a", "path_regex": "b"},
]


@pytest.mark.parametrize("seed", range(40))
def test_no_false_never_match(seed: int) -> None:
    """Random policies over a small alphabet: a rule load rejects as never matching is selected
    by no path (every path up to 5 characters tried, in the model); and one no earlier rule
    takes anywhere (among those paths) is never rejected."""
    rng = random.Random(seed)
    rules = [r(f"r{i}", **rng.choice(SHAPES)) for i in range(rng.randint(2, 5))]
    errors, _ = outcome(rules)
    doomed = {int(m.split("rules[")[1].split("]")[0]) for m in errors if NEVER in m}
    if doomed:  # load rejected it: check the claim on the rules as written, without the loader
        with pytest.MonkeyPatch.context() as patch:
            from cachewright.generator import reach
            patch.setattr(reach, "check", lambda policy: reach.Findings())
            policy = loads(BASE + yaml.safe_dump({"rules": [{"cache": False, **x} for x in rules]}), "p.yaml")
    else:
        policy = loads(BASE + yaml.safe_dump({"rules": [{"cache": False, **x} for x in rules]}), "p.yaml")
    chosen = {select_rule(policy, Request("GET", p, "h.test")).index for p in PATHS}
    for index in doomed:
        assert index not in chosen, (rules, index)


# --- the regex dialect ---

ACCEPTED = [
    r"^/a/[0-9]+$", r"(?i)^/CaseY/", r"\.(?:php|asp)$", r"^/v\d+\.\d+/[\w-]+\.json$", r"^/x/(?!admin)[a-z]+",
    r"(?<=/)x$", r"^/a{2,3}?b*?c+?", r"^/p/[0-9]++$", r"^/(?>ab|a)c", r"^/(?#comment)c", r"^/(?i:ab)c",
    r"^/(?<name>[a-z]+)/(?P<id>[0-9]+)$", r"[]a]", r"[^]a]", r"\x41\t", r"\bword\B", r"\A/a\Z",
    r"^/a{0,3}$", r"(?s)^/a.b", r"(?m)^/a$", r"^/[\d\s\w]$", r"[%&+,;=:@!$'()*]",
]
REFUSED = [
    (r"^/(a)\1", "back-references"), (r"(?P<a>x)(?P=a)", "back-references"), (r"\g<1>", "back-references"),
    (r"\k<a>", "back-references"), (r"a\v", r"\v is a vertical tab"), (r"a{,3}", "{,n} is literal"),
    (r"[[:alpha:]]", "POSIX classes"), (r"(?x)a b", "(?x) is not supported"), (r"(?(1)a|b)", "conditional"),
    (r"(*UTF)a", "PCRE verbs"), (r"\Qa\E", "not a valid regular expression"), (r"\x{41}", "not a valid"),
    (r"\p{L}", "not a valid"), (r"\h", "not a valid"), (r"\u0041", "Python-only"), (r"(?a)x", "Python-only"),
    (r"(?<a>x)(?<a>y)", "used twice"), (r"(?<1a>x)", "not a PCRE2 name"), (r"a{70000}", "65535"),
    (r"(?'n'x)", "not a valid"),
]


@pytest.mark.parametrize("regex", ACCEPTED)
def test_accepted_regexes(regex: str) -> None:
    assert dialect.check(regex) is None


@pytest.mark.parametrize(("regex", "why"), REFUSED)
def test_refused_regexes_say_why(regex: str, why: str) -> None:
    message = dialect.check(regex)
    assert message is not None and why in message, message


def test_a_named_group_reaches_the_engines_as_a_plain_group() -> None:
    policy = loads(BASE + "rules:\n  - {name: a, match: {path_regex: '^/(?<h>[a-z]+)$'}}\n", "p.yaml")
    assert policy.rules[0].match.path_regex == "^/(?:[a-z]+)$"
    texts = "".join(f.text for f in compile_policy(policy).files)
    assert "(?<h>" not in texts and "^/(?:[a-z]+)$" in texts


def _dialect_policy() -> str:
    rules = [{"name": f"f{i}", "match": {"path_prefix": f"/f{i}/", "path_regex": regex}, "cache": False}
             for i, regex in enumerate(ACCEPTED)]
    rules += [{"name": f"h{i}", "match": {"path_prefix": f"/h{i}/", "header": {"name": "X-A", "regex": regex}},
               "cache": False} for i, regex in enumerate(ACCEPTED)]
    return BASE + yaml.safe_dump({"rules": rules}, sort_keys=False)


@pytest.mark.engine
def test_every_accepted_form_is_read_by_both_engines(tmp_path: Path) -> None:
    """nginx -t and varnishd -C accept each form, as the compiler writes it."""
    policy = loads(_dialect_policy(), str(tmp_path / "p.yaml"))
    verified = verify(compile_policy(policy).files, tmp_path, ["app"])
    assert {v.engine for v in verified} >= {"nginx", "varnish"}


def _pcre2() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("pcre2-8")
    return ctypes.CDLL(name) if name else None


def _pcre2_search(lib: ctypes.CDLL, regex: str, text: str) -> bool:
    """PCRE2's verdict, with the options the engines use (none: no UTF, default newline)."""
    err, offset = ctypes.c_int(), ctypes.c_size_t()
    lib.pcre2_compile_8.restype = ctypes.c_void_p
    lib.pcre2_match_data_create_from_pattern_8.restype = ctypes.c_void_p
    pattern = regex.encode()
    code = lib.pcre2_compile_8(pattern, ctypes.c_size_t(len(pattern)), 0, ctypes.byref(err),
                               ctypes.byref(offset), None)
    assert code, f"PCRE2 refuses {regex!r} (error {err.value})"
    data = lib.pcre2_match_data_create_from_pattern_8(ctypes.c_void_p(code), None)
    subject = text.encode()
    found = lib.pcre2_match_8(ctypes.c_void_p(code), subject, ctypes.c_size_t(len(subject)),
                              ctypes.c_size_t(0), 0, ctypes.c_void_p(data), None)
    lib.pcre2_match_data_free_8(ctypes.c_void_p(data))
    lib.pcre2_code_free_8(ctypes.c_void_p(code))
    assert found >= -1, f"PCRE2 match error {found} for {regex!r}"
    return bool(found >= 0)


SAMPLES = ["/", "/a", "/a/1", "/a/12", "/CaseY/x", "/casey/", "/x.php", "/v1.2/a-b.json", "/x/admin",
           "/x/adminx", "/x/blog", "/x", "/aab", "/aaabbc", "/p/12", "/abc", "/c", "/AB", "/ABc", "/abc",
           "/word", "/a word x", "/a/b", "/a\nb", "/a b", "]", "a", "A\t", "/%", "/@", "/a/x",
           "/ac", "/abc", "/a7", "/_"]


def test_pcre2_and_python_agree_on_every_accepted_form() -> None:
    """The engines' own library (libpcre2-8, as nginx and varnishd link it) and Python's re give
    the same verdict for each accepted form (as the compiler writes it) on sample texts."""
    lib = _pcre2()
    if lib is None:
        pytest.skip("libpcre2-8 is not installed")
    for regex in ACCEPTED:
        written = dialect.canonical(regex)
        for text in SAMPLES:
            assert _pcre2_search(lib, written, text) == bool(re.search(written, text)), (regex, text)


def test_the_docs_name_the_dialect() -> None:
    page = (Path(__file__).resolve().parent.parent / "docs" / "policy.md").read_text()
    assert "### Regular expressions: one dialect for both engines and the model" in page
    assert "(?<name>...)" in page and "{,n}" in page and textwrap.dedent("PCRE2") in page


@pytest.mark.engine
def test_why_named_groups_are_written_plain(tmp_path: Path) -> None:
    """Both engines accept a named group, but nginx makes it a variable: one named like one of
    nginx's own (host) fails nginx -t, so the compiler writes (?:...) instead."""
    policy = loads(BASE + "rules:\n  - {name: a, match: {path_regex: '^/(?<host>[a-z]+)$'}}\n",
                   str(tmp_path / "p.yaml"))
    files = compile_policy(policy).files
    named = [type(f)(f.path, f.text.replace("^/(?:[a-z]+)$", "^/(?<h>[a-z]+)$")) for f in files]
    assert all("(?<h>" in f.text for f in named if f.path.endswith(("nginx.conf", "default.vcl")))
    assert {v.engine for v in verify(named, tmp_path, ["app"])} >= {"nginx", "varnish"}
    clash = [type(f)(f.path, f.text.replace("^/(?:[a-z]+)$", "^/(?<host>[a-z]+)$")) for f in files
             if f.path.startswith("nginx/")]
    with pytest.raises(VerifyError, match='duplicate "host" variable'):
        verify(clash, tmp_path, ["app"])


def test_a_regex_with_exponentially_many_states_is_left_undecided_quickly() -> None:
    """``(?:a|b)*a(?:a|b){30}`` has 2**30 states as a deterministic automaton: the check gives up
    (a warning) instead of hanging the load."""
    import time
    started = time.monotonic()
    errors, warnings = outcome([r("a", path_regex="(?:a|b)*a(?:a|b){30}"), r("b", path_prefix="/x/")])
    assert time.monotonic() - started < 30
    undecided = [w for w in warnings if " rules[1].match: " in w]
    assert errors == [] and len(undecided) == 1 and "too many automaton states" in undecided[0]


def test_varnish_restatus_sees_exact_paths_and_escapes_apart_or_together() -> None:
    """A rule matching beyond the key (a header) rewrites Cache-Status on hits of rules whose
    paths may overlap its own: an exact path elsewhere does not; an escape in the other hex case
    does."""
    from cachewright.generator.varnish_rules import restatus_rules
    policy = loads(BASE + textwrap.dedent("""\
        rules:
          - {name: api, match: {path_prefix: /a%2A/, header: {name: X-V}}}
          - {name: home, match: {path: /}}
          - {name: other, match: {path: /a%2a/x}}
          - {name: beside, match: {path_prefix: /b/}}
        """), "p.yaml")
    assert restatus_rules(policy) == ("api", "other", "default")
