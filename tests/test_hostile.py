"""Hostile values in every string field that reaches a generated config.

For each (field, value): either ``loads`` refuses it with one positioned message naming the field,
or the generated files, read back the way the engines read them, are the clean baseline's files
with the benign value replaced by the hostile one and nothing else changed: the same nginx
directives (parsed with crossplane), the same VCL tokens and declarations (no extra ``sub``,
``import``, ``C{``), and the value where the benign value was, as one argument or one string.
The accepted variants are then checked by the real engines (``nginx -t``, ``varnishd -C``,
``hitch --test``), in parallel.
"""

from __future__ import annotations

import copy
import difflib
import itertools
import re
import unicodedata
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from policies import (
    Entry,
    Rep,
    Token,
    dump,
    file_text,
    nginx_directives,
    nginx_tree,
    replace_all,
    vcl_declarations,
    vcl_tokens,
    verify_many,
)

from cachewright.generator.errors import PolicyError
from cachewright.generator.load import loads
from cachewright.generator.nginx_dispatch import header_var
from cachewright.generator.pipeline import Compiled, compile_policy
from cachewright.generator.quote import glob_regex, host_regex, literal_regex
from cachewright.generator.render import OutputFile

FILENAME = "hostile.yaml"
POLICY_DIR = Path(__file__).resolve().parent

BASE_PREFIX = "/bn.prefix/"  # its regex form differs from the text (the VCL has both forms)
BASE: dict[str, Any] = {
    "version": 1,
    "name": "bnpolicy",
    "origin": {"url": ["http://127.0.0.9:8123"], "host_header": "bn-origin.example",
               "probe": {"path": "/bn-probe"}},
    "listen": {
        "http": {"address": "127.0.0.2", "port": 8080},
        "https": {"address": "127.0.0.3", "port": 8443, "certificate": "certs/bn-cert.pem",
                  "key": "certs/bn-key.pem", "http2": True, "hsts": {"max_age": "1d"}},
        "hosts": ["bn-listen.example"],
    },
    "cache": {"query": {"ignore": ["bn_q*"]}},
    "rules": [{
        "name": "bnrule",
        "match": {
            "path_prefix": BASE_PREFIX,
            "path_regex": "^/bn-rx/",
            "extensions": ["bnext"],
            "host": ["bn-match.example"],
            "header": [{"name": "X-Bn-Hdr", "regex": "^bn-hval$"}],
            "cookie": [{"name": "!bn.ck", "regex": "^bn-cval$"}],
        },
        "ttl": "1h",
        "vary": ["X-Bn-Vary"],
        "key": {"headers": ["X-Bn-Key"], "cookies": ["~bn.kc"]},
        "tags_from_header": "X-Bn-Tags",
    }],
    "purge": {"allow": ["10.9.9.0/24"], "kinds": ["url"]},
    "headers": {"cache_status_name": "bn-cache"},
    "accept_missing": {"nginx": ["origin.probe"]},
}


def _same(v: str) -> list[Rep]:
    return [(v, v, False)]


def _header(v: str) -> list[Rep]:
    return [(header_var(v), header_var(v), False), (v.lower(), v.lower(), False), (v, v, False)]


def _literal(v: str) -> list[Rep]:
    return [(literal_regex(v), literal_regex(v), False), (v, v, False)]


def _host(v: str) -> list[Rep]:
    return [(host_regex((v,))[4:-2], host_regex((v,))[4:-2], False), (v, v, False)]


def _wildcard_like(benign: str) -> Callable[[Any], Any]:
    """Exact host names are compared as strings in the VCL, a ``*.`` name takes a regex."""
    return lambda v: f"*.{benign}" if isinstance(v, str) and v.startswith("*.") else benign


def _escaped_like(v: Any) -> Any:
    """A prefix without ``%`` is a string test in the VCL; with one, a regex (hex in any case)."""
    return "/bn-%c3%a9prefix/" if isinstance(v, str) and "%" in v else BASE_PREFIX


def _presence_like(benign: str) -> Callable[[Any], Any]:
    """No regex (or ".") is a presence test in the VCL, anything else a regex match."""
    return lambda v: "." if v in ("", ".", None) else benign


def _origin(v: str) -> list[Rep]:
    host, _, port = v.removeprefix("http://").rstrip("/").partition(":")
    port = port or "80"
    return [(f"{host}:{port}", f"{host}:{port}", False), (host, host, False), (port, port, True)]


def _present(v: str) -> list[Rep]:
    return _same(v or ".")


def _cidr(v: str) -> list[Rep]:
    address, _, bits = v.partition("/")
    bits = bits or ("128" if ":" in address else "32")
    return [(v, v, False), (address, address, False), (bits, bits, True)]


@dataclass(frozen=True)
class Field:
    """A string field: where it lives, a benign value, and how a value shows in the output.

    ``reps(v)`` lists the forms ``v`` takes in generated text (most specific first); the hostile
    output must equal the baseline with each benign form replaced by the hostile one.
    ``nginx_at``/``vcl_at`` give the one nginx argument / VCL string a value must become.
    ``like(v)``: where the output's shape depends on the kind of value (a string comparison or a
    regex), the benign value of ``v``'s kind; the baseline is compiled with it."""

    id: str
    keys: tuple[str | int, ...]
    reps: Callable[[str], list[Rep]] = _same
    hitch_reps: Callable[[str], list[Rep]] | None = None
    nginx_at: Callable[[str], str] | None = None
    vcl_at: Callable[[str], str] | None = None
    extras: tuple[tuple[str, Any], ...] = ()
    like: Callable[[Any], Any] | None = None

    @property
    def path(self) -> str:
        out = ""
        for key in self.keys:
            out += f"[{key}]" if isinstance(key, int) else (f".{key}" if out else key)
        return out

    @property
    def benign(self) -> Any:
        node: Any = BASE
        for key in self.keys:
            node = node[key]
        return node

    def benign_for(self, value: Any) -> Any:
        return self.like(value) if self.like else self.benign

    def reps_for(self, value: str, hitch: bool = False) -> list[Rep]:
        forms = (self.hitch_reps or self.reps) if hitch else self.reps
        return [(old, new, exact) for (old, _, exact), (new, _, _) in
                zip(forms(self.benign_for(value)), forms(value), strict=True)]


REGEX_EXTRAS = (("quote-inside", 'a"b'), ("posix-class", "[[:alpha:]]"), ("py-unicode-escape",
                "\\u0041"), ("py-ascii-flag", "(?a)x"), ("lookbehind", "(?<=a)b"),
                ("hex-quote-brace", "\\x22}"), ("empty-braces", "a{,3}"))
RULE = ("rules", 0)
FIELDS = (
    Field("name", ("name",), extras=(("max-len", "a" * 63), ("too-long", "a" * 64))),
    Field("origin.url", ("origin", "url", 0), _origin, extras=(
        ("localhost", "http://localhost:8123"), ("slash", "http://127.0.0.9:8123/"),
        ("no-port", "http://127.0.0.9"), ("ipv6", "http://[::1]:8123"), ("scheme", "ftp://x"),
        ("path", "http://127.0.0.9:8123/x"), ("big-port", "http://127.0.0.9:99999"),
        ("userinfo", "http://a@127.0.0.9:8123"))),
    Field("origin.host_header", ("origin", "host_header"), nginx_at=lambda v: v,
          vcl_at=lambda v: v, extras=(("wildcard", "*.example.com"), ("upper", "A.example"))),
    Field("origin.probe.path", ("origin", "probe", "path"), vcl_at=lambda v: v,
          extras=(("path-punct", "/a$b;c'd(e)*+,=:@!&~"), ("path-pct00", "/%00"))),
    Field("listen.http.address", ("listen", "http", "address"),
          extras=(("ipv6", "[::1]"), ("zone", "[fe80::1%eth0]"), ("short", "1.2.3"))),
    Field("listen.https.address", ("listen", "https", "address"),
          hitch_reps=lambda v: [(v.strip("[]"), v.strip("[]"), False)],
          extras=(("ipv6", "[::1]"),)),
    Field("listen.https.certificate", ("listen", "https", "certificate"), nginx_at=lambda v: v,
          extras=(("traversal", "../../etc/passwd"), ("absolute", "/abs/c.pem"), ("dash", "-"))),
    Field("listen.https.key", ("listen", "https", "key"), nginx_at=lambda v: v,
          extras=(("traversal", "../../etc/key"), ("absolute", "/abs/k.pem"))),
    Field("listen.hosts", ("listen", "hosts", 0), _host,  # nginx: inside the dispatch regexes
          like=_wildcard_like("bn-listen.example"),
          extras=(("wildcard", "*.example.com"), ("idn", "xn--bcher-kva.example"))),
    Field("cache.query.ignore", ("cache", "query", "ignore", 0),
          lambda v: _same(glob_regex(v)), extras=(("brackets", "[a]*"), ("star", "*"),
                                                   ("dot", "."), ("dash", "-"))),
    Field("rules.name", (*RULE, "name"), extras=(("dash-underscore", "a-b_c"),
                                                 ("reserved", "default"))),
    Field("rules.match.path_prefix", (*RULE, "match", "path_prefix"), _literal, like=_escaped_like,
          vcl_at=lambda v: v if "%" not in v else "^" + literal_regex(v),
          extras=(("path-punct", "/a$b;c'd(e)*+,=:@!&~"), ("path-pct00", "/%00"), ("path-dollar", "/$x"),
                  ("semicolon-brace", "/;}"), ("path-nginx-var", "/${x}"))),
    Field("rules.match.path_regex", (*RULE, "match", "path_regex"),
          nginx_at=lambda v: "~" + v, vcl_at=lambda v: v, extras=REGEX_EXTRAS),
    Field("rules.match.extensions", (*RULE, "match", "extensions", 0),
          lambda v: _same(literal_regex(v.lower())), extras=(("upper", "CSS"), ("digit", "0"))),
    Field("rules.match.host", (*RULE, "match", "host", 0), _host, like=_wildcard_like("bn-match.example"),
          nginx_at=lambda v: "~" + host_regex((v,)),
          vcl_at=lambda v: host_regex((v,)) if v.startswith("*.") else v,
          extras=(("wildcard", "*.example.com"),)),
    Field("rules.match.header.name", (*RULE, "match", "header", 0, "name"), _header,
          extras=(("digit-first", "1abc"), ("dash-end", "A-"))),
    Field("rules.match.header.regex", (*RULE, "match", "header", 0, "regex"), _present,
          like=_presence_like("^bn-hval$"), nginx_at=lambda v: "~" + (v or "."),
          vcl_at=lambda v: v if v not in ("", ".") else None, extras=REGEX_EXTRAS),
    Field("rules.match.cookie.name", (*RULE, "match", "cookie", 0, "name"), _literal,
          extras=(("punct", "a!#%&*+.^_|~-b"), ("percent", "%"), ("pipe", "|"))),
    Field("rules.match.cookie.regex", (*RULE, "match", "cookie", 0, "regex"), _present,
          like=_presence_like("^bn-cval$"), nginx_at=lambda v: "~" + (v or "."),
          vcl_at=lambda v: v if v not in ("", ".") else None, extras=REGEX_EXTRAS),
    Field("rules.vary", (*RULE, "vary", 0), _header, extras=(("digit-first", "1abc"),)),
    Field("rules.key.headers", (*RULE, "key", "headers", 0), _header,
          extras=(("digit-first", "1abc"),)),
    Field("rules.key.cookies", (*RULE, "key", "cookies", 0), _literal,
          extras=(("punct", "a!#%&*+.^_|~-b"),)),
    Field("rules.tags_from_header", (*RULE, "tags_from_header"), _header,
          extras=(("digit-first", "1abc"),)),
    Field("purge.allow", ("purge", "allow", 0), _cidr, vcl_at=lambda v: v.partition("/")[0],
          extras=(("ipv6", "::1/128"), ("bare-address", "10.0.0.1"), ("mapped", "::ffff:10.0.0.1/128"),
                  ("not-network", "10.0.0.1/8"), ("zone", "fe80::1%eth0/128"),
                  ("zone-inject", 'fe80::1%;}{"/128'), ("zone-space", "fe80::1%x y/128"))),
    Field("headers.cache_status_name", ("headers", "cache_status_name"),
          extras=(("punct", "a.b-c_d"),)),
)

VALUES: tuple[tuple[str, Any], ...] = (
    ("kitchen-sink", "; } { \" ' \\ $ ${x} # \"} \"\"\" C{"),
    ("semicolon", ";"), ("brace-close", "}"), ("brace-open", "{"), ("dquote", '"'),
    ("squote", "'"), ("backslash", "\\"), ("dollar", "$"), ("nginx-var", "${x}"), ("hash", "#"),
    ("vcl-long-end", '"}'), ("triple-quote", '"""'), ("inline-c", "C{ abort(); }C"),
    ("brace-quote", '}"'), ("lf", "a\nb"), ("cr", "a\rb"), ("crlf-header", "x\r\nX-Evil: 1"),
    ("nul", "a\x00b"), ("tab", "a\tb"), ("esc", "\x1b[31m"), ("del", "a\x7fb"),
    ("nel", "a\x85b"), ("vt", "a\x0bb"), ("e-acute", "é"), ("emoji", "\U0001f600"),
    ("rtl-override", "a\u202eb"), ("zero-width", "a\u200bb"), ("10kB", "a" * 10240),
    ("regex-meta", "^.*(a|b)+[x-z]?\\d{2}$"), ("pct00", "%00"), ("space", "a b"),
    ("leading-space", " a"), ("empty", ""),
    ("nginx-inject", 'x"; load_module /tmp/evil.so; #'),
    ("nginx-inject-lf", "x;\nload_module /tmp/evil.so;"),
    ("vcl-inject", 'x"} + ""); } sub vcl_init { C{ abort(); }C } sub x { if ("'),
    ("vcl-inject-lf", 'x"\n}\nsub vcl_init { return (fail); }\n#'),
    ("yaml-bool", True), ("yaml-int", 12), ("yaml-list", ["x"]), ("yaml-map", {"x": 1}),
)
FILENAMES = (
    ("plain", "policy.yaml"), ("lf-inject", "p\nload_module /tmp/evil.so;\n.yaml"),
    ("vcl-lf-inject", "p\nsub vcl_init { return (fail); }\n.yaml"), ("cr", "p\r.yaml"),
    ("nul", "p\x00.yaml"), ("semicolon-brace", "p;}{.yaml"), ("rtl-override", "p\u202e.yaml"),
    ("space", "my policy.yaml"), ("quote", 'p".yaml'),
)


@dataclass(frozen=True)
class Case:
    id: str
    field: Field | None  # None: the value is the policy's file name
    value: Any = field(compare=False)

    def text_and_filename(self) -> tuple[str, str]:
        return _text_and_filename(self)


@cache
def _text_and_filename(case: Case) -> tuple[str, str]:
    if case.field is None:
        return dump(BASE), case.value
    doc = copy.deepcopy(BASE)
    node: Any = doc
    for key in case.field.keys[:-1]:
        node = node[key]
    node[case.field.keys[-1]] = case.value
    return dump(doc), FILENAME


def _cases() -> Iterator[Case]:
    for f in FIELDS:
        for name, value in (*VALUES, *f.extras):
            yield Case(f"{f.id}={name}", f, value)
    for name, value in FILENAMES:
        yield Case(f"filename={name}", None, value)


CASES = tuple(_cases())
assert len({c.id for c in CASES}) == len(CASES), "case ids must be unique"


@dataclass(frozen=True)
class Outcome:
    error: PolicyError | None = None
    compiled: Compiled | None = None
    crash: BaseException | None = None


_OUTCOMES: dict[Case, Outcome] = {}


def outcome(case: Case) -> Outcome:
    if case not in _OUTCOMES:
        re.purge()  # re warns only when it compiles: a cached pattern would hide the warning
        _OUTCOMES[case] = _outcome(case)
    return _OUTCOMES[case]


def _outcome(case: Case) -> Outcome:
    text, filename = case.text_and_filename()
    try:
        policy = loads(text, filename)
    except PolicyError as exc:
        return Outcome(error=exc)
    except Exception as exc:  # reported by the test
        return Outcome(crash=exc)
    try:
        return Outcome(compiled=compile_policy(policy))
    except Exception as exc:  # reported by the test
        return Outcome(crash=exc)


@cache
def baseline(keys: tuple[str | int, ...] = (), benign: Any = None) -> Compiled:
    """The clean policy compiled; with ``keys``, that field holding ``benign`` instead."""
    doc = copy.deepcopy(BASE)
    if keys:
        node: Any = doc
        for key in keys[:-1]:
            node = node[key]
        node[keys[-1]] = benign
    return compile_policy(loads(dump(doc), FILENAME))


def _accepted_at_load(case: Case) -> bool:
    """At collection: does ``loads`` accept the case? (A result that came with a warning is not
    kept, so the test itself meets the warning, which the project's settings make an error.)"""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        re.purge()
        result = _outcome(case)
    if not caught:
        _OUTCOMES[case] = result
    return result.error is None and result.crash is None


# --------------------------------------------------------------------------- rejected values

_PROBLEM = re.compile(r"^(?P<file>.*):(?P<line>\d+):(?P<col>\d+): (?P<path>[^:\s]+): (?P<msg>.+)$")


@cache
def _nodes(case: Case) -> tuple[yaml.Node | None, yaml.Node]:
    """The YAML nodes of the case's value and of its mapping key (None in a list)."""
    assert case.field is not None
    node = yaml.compose(case.text_and_filename()[0], Loader=yaml.CSafeLoader)
    key_node = None
    for key in case.field.keys:
        if isinstance(key, int):
            key_node, node = None, node.value[key]
        else:
            key_node, node = next((k, v) for k, v in node.value if k.value == key)
    return key_node, node


def _positions(case: Case) -> set[tuple[int, int]]:
    """1-based positions of the value node and of its mapping key (if any)."""
    return {(n.start_mark.line + 1, n.start_mark.column + 1) for n in _nodes(case) if n}


def _unprintable(message: str, categories: tuple[str, ...] = ("Cc",)) -> list[str]:
    """Characters of ``message`` in ``categories`` (Cc: control, Cf: format: bidi, zero-width)."""
    return [repr(c) for c in message if unicodedata.category(c) in categories and c != "\n"]


def check_rejected(case: Case, error: PolicyError) -> None:
    message = str(error)
    assert "Traceback" not in message
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)
    assert len(error.problems) == 1, f"one value, one problem; got:\n{message}"
    assert error.render().endswith("1 error in policy")
    controls = [c for c in _unprintable(message) if c < "'\\x80'"]
    assert not controls, f"message echoes control characters: {controls}"
    assert all(len(line) <= 300 for line in message.splitlines()), "message too long"
    if case.field is None:
        return
    match = _PROBLEM.match(message)
    assert match, f"not 'file:line:col: path: message': {message!r}"
    assert match["file"] == FILENAME
    assert match["path"] == case.field.path, message
    where = (int(match["line"]), int(match["col"]))
    assert where in _positions(case), f"{where} is not where the value is"


# --------------------------------------------------------------------------- accepted values


def _flat(tree: Sequence[Entry], depth: int = 0) -> list[str]:
    out = []
    for name, args, block in tree:
        out.append("  " * depth + " ".join(map(repr, (name, *args))))
        if block is not None:
            out += _flat(block, depth + 1)
    return out


def _replace_tree(tree: Sequence[Entry], reps: Sequence[Rep]) -> tuple[Entry, ...]:
    return tuple((name, tuple(replace_all(a, reps) for a in args),
                  None if block is None else _replace_tree(block, reps))
                 for name, args, block in tree)


def _replace_tokens(tokens: Sequence[Token], reps: Sequence[Rep]) -> list[Token]:
    return [(kind, replace_all(text, reps) if kind in ("STR", "ID", "NUM") else text)
            for kind, text in tokens]


def _diff(expected: Sequence[Any], actual: Sequence[Any]) -> str:
    lines = difflib.unified_diff([str(x) for x in expected], [str(x) for x in actual],
                                 "expected (baseline, value replaced)", "generated", n=1,
                                 lineterm="")
    return "\n".join(list(lines)[:40])


def _count_args(tree: Sequence[Entry], wanted: str) -> int:
    return sum((wanted in args) + (_count_args(block, wanted) if block else 0)
               for _, args, block in tree)


def _text(compiled: Compiled, path: str) -> str:
    text = file_text(compiled.files, path)
    assert text is not None, f"{path} was not generated"
    return text


def _uncommented(text: str) -> list[str]:
    return [line for line in text.splitlines() if not line.lstrip().startswith("#")]


@cache
def baseline_nginx(keys: tuple[str | int, ...] = (), benign: Any = None) -> tuple[Entry, ...]:
    return nginx_tree(_text(baseline(keys, benign), "nginx/nginx.conf"))


@cache
def baseline_vcl(keys: tuple[str | int, ...] = (), benign: Any = None) -> tuple[Token, ...]:
    return tuple(vcl_tokens(_text(baseline(keys, benign), "varnish/default.vcl")))


def check_accepted(case: Case, compiled: Compiled) -> None:
    like: tuple[Any, ...] = ()
    if case.field and case.field.like:
        like = (case.field.keys, case.field.benign_for(case.value))
    base = baseline(*like)
    assert sorted(f.path for f in compiled.files) == sorted(f.path for f in base.files)
    reps = case.field.reps_for(case.value) if case.field else []

    # nginx, as crossplane reads it: same directives, the value exactly where the benign one was.
    base_tree = baseline_nginx(*like)
    tree = nginx_tree(_text(compiled, "nginx/nginx.conf"))
    assert nginx_directives(tree) == nginx_directives(base_tree), "nginx directives differ"
    expected_tree = _replace_tree(base_tree, reps)
    assert tree == expected_tree, _diff(_flat(expected_tree), _flat(tree))
    if case.field and case.field.nginx_at:
        want = _count_args(base_tree, case.field.nginx_at(case.field.benign_for(case.value)))
        assert want >= 1
        assert _count_args(tree, case.field.nginx_at(case.value)) == want

    # VCL, as VCC tokenises it: same declarations, same tokens, the value as one string.
    base_tokens = list(baseline_vcl(*like))
    tokens = vcl_tokens(_text(compiled, "varnish/default.vcl"))
    assert vcl_declarations(tokens) == vcl_declarations(base_tokens), "VCL declarations differ"
    expected_tokens = _replace_tokens(base_tokens, reps)
    assert tokens == expected_tokens, _diff(expected_tokens, tokens)
    if case.field and case.field.vcl_at and case.field.vcl_at(case.value):
        want = base_tokens.count(("STR", case.field.vcl_at(case.field.benign_for(case.value))))
        assert want >= 1
        assert tokens.count(("STR", case.field.vcl_at(case.value))) == want

    # hitch.conf and varnishd.args: line for line.
    hitch_reps = case.field.reps_for(case.value, hitch=True) if case.field else []
    for path, r in (("hitch/hitch.conf", hitch_reps), ("varnish/varnishd.args", reps)):
        expected_lines = [replace_all(line, r) for line in _uncommented(_text(base, path))]
        lines = _uncommented(_text(compiled, path))
        assert lines == expected_lines, _diff(expected_lines, lines)


# --------------------------------------------------------------------------- the tests


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_hostile_value(case: Case) -> None:
    """Refused at load with a positioned message, or written so the engines read that value."""
    if case.field is not None:
        value = yaml.SafeLoader("").construct_object(_nodes(case)[1], deep=True)
        assert value == case.value, "the test's YAML does not hold the value"
    result = outcome(case)
    if result.crash is not None:
        raise AssertionError(f"{type(result.crash).__name__} escaped instead of a PolicyError "
                             f"or output: {result.crash}") from result.crash
    if result.error is not None:
        check_rejected(case, result.error)
        return
    assert result.compiled is not None
    check_accepted(case, result.compiled)


@pytest.mark.parametrize("value", ["a\x85b", "a\x9b2Jb", "a\u202eb", "a\u200bb"],
                         ids=["nel", "c1-csi", "rtl-override", "zero-width"])
def test_message_escapes_unprintable_characters(value: str) -> None:
    """A C1 control (NEL, CSI), bidi override or zero-width character echoed into a message
    breaks, reorders or hides what the terminal shows; the message should escape it (as repr()
    does: \\x85, \\u202e)."""
    with pytest.raises(PolicyError) as info:
        loads(dump({**BASE, "name": value}), FILENAME)
    assert not _unprintable(str(info.value), ("Cc", "Cf")), str(info.value)


# Accepted values the engine check cannot judge: the files they name must exist on this machine
# (verify only stands in for missing relative paths; for these it would write outside its
# temporary directory).
NOT_ENGINE_CHECKED = {
    f"listen.https.{f}={v}" for f in ("certificate", "key") for v in ("traversal", "absolute")}
ACCEPTED = tuple(c for c in CASES if c.id not in NOT_ENGINE_CHECKED and _accepted_at_load(c))


def _combined_files(cases: Sequence[Case]) -> tuple[OutputFile, ...] | str:
    """The files of the baseline with every case's value in place at once (one per field)."""
    doc, filename = copy.deepcopy(BASE), FILENAME
    for case in cases:
        if case.field is None:
            filename = case.value
            continue
        node: Any = doc
        for key in case.field.keys[:-1]:
            node = node[key]
        node[case.field.keys[-1]] = case.value
    try:
        return compile_policy(loads(dump(doc), filename)).files
    except Exception as exc:  # becomes the verdict
        return f"the combined policy does not compile: {type(exc).__name__}: {exc}"


def engine_verdicts(cases: Sequence[Case]) -> dict[str, str | None]:
    """The engines' verdict per case. One engine run costs ~0.5 s (varnishd -C), so values of
    different fields share one policy; a batch the engines reject is split in halves until each
    rejected value stands alone with its own message."""
    columns: dict[str, list[Case]] = {}
    for case in cases:
        columns.setdefault(case.field.id if case.field else "filename", []).append(case)
    batches = [tuple(c for c in row if c is not None)
               for row in itertools.zip_longest(*columns.values())]
    verdicts: dict[str, str | None] = {}
    while batches:
        jobs: dict[int, Sequence[OutputFile]] = {}
        failed: dict[int, str | None] = {}
        for i, batch in enumerate(batches):
            files = _combined_files(batch)
            if isinstance(files, str):
                failed[i] = files
            else:
                jobs[i] = files
        failed.update(verify_many(jobs, POLICY_DIR))
        next_round = []
        for i, batch in enumerate(batches):
            if failed[i] is None or len(batch) == 1:
                verdicts.update((case.id, failed[i]) for case in batch)
            else:
                next_round += [batch[: len(batch) // 2], batch[len(batch) // 2:]]
        batches = next_round
    return verdicts


@pytest.fixture(scope="module")
def engine_results(request: pytest.FixtureRequest) -> dict[str, str | None]:
    """The real engines' verdicts on the baseline and every selected accepted case."""
    selected = [item.callspec.params["case"] for item in request.session.items
                if getattr(item, "originalname", "") == "test_hostile_value_engines"]
    results = engine_verdicts(selected)
    results["<baseline>"] = verify_many({0: baseline().files}, POLICY_DIR)[0]
    return results


@pytest.mark.engine
def test_baseline_passes_engines(engine_results: dict[str, str | None]) -> None:
    assert engine_results["<baseline>"] is None


@pytest.mark.engine
@pytest.mark.parametrize("case", ACCEPTED, ids=[c.id for c in ACCEPTED])
def test_hostile_value_engines(case: Case, engine_results: dict[str, str | None]) -> None:
    """Every value ``loads`` accepts gives files nginx -t, varnishd -C and hitch --test accept."""
    assert case.id in engine_results, "compile failed (see test_hostile_value)"
    assert engine_results[case.id] is None, engine_results[case.id]
