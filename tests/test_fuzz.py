"""Generator fuzzing: arbitrary YAML into ``loads`` + ``compile_policy``.

Two sources of input: random YAML documents (random mappings, lists and scalars with policy-ish
keys, and raw text that may not even be YAML), and valid random policies (``tests/policies.py``)
with hostile strings spliced into random string fields, values swapped for other types, or keys
dropped. Every input must end in either a ``CachewrightError`` whose every line has the
``file:line:col:`` shape and is printable, or output files that read back cleanly: crossplane
parses nginx.conf, every nginx directive is one the templates write, the VCL has one ``vcl`` line,
no inline C, no ``include``, only the templates' ``import``s and ``sub``s, and no string left open.
A sample of the outputs goes through the real engines (``engine``). ``benchmarks/fuzz/run.py`` runs
the same oracle for longer.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from policies import (
    dump,
    nginx_args,
    nginx_directives,
    nginx_tree,
    policy_docs,
    vcl_declarations,
    vcl_tokens,
    verify_many,
)

from cachewright.generator.errors import CachewrightError, CapabilityError, PolicyError, Problem
from cachewright.generator.load import loads
from cachewright.generator.pipeline import Compiled, compile_policy
from cachewright.generator.render import OutputFile

FILENAME = "fuzz.yaml"
ROOT = Path(__file__).resolve().parent.parent
POLICY_DIR = Path(__file__).resolve().parent
EXAMPLES = 300
ENGINE_SAMPLE = 16
# No shrinking: a failure prints the input as drawn (shrinking a compile can take minutes).
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck),
                    phases=[Phase.explicit, Phase.reuse, Phase.generate])

# --------------------------------------------------------------------------- the oracle

_WHERE = re.compile(r"^" + re.escape(FILENAME) + r":\d+:\d+: .*\S")


@dataclass(frozen=True)
class Result:
    """One input's fate: ``error`` (a clean, positioned error), ``compiled`` or ``failure``."""

    kind: str
    detail: str = ""
    compiled: Compiled | None = None


@cache
def nginx_allowed() -> frozenset[str]:
    """Every directive name the nginx templates can write (first word of each template line)."""
    names = {"<entry>"}
    for template in (ROOT / "templates" / "nginx").glob("*.conf.j2"):
        for line in template.read_text(encoding="utf-8").splitlines():
            m = re.match(r"\s*([a-z_0-9]+)(?:\s|;|$)", line)
            if m:
                names.add(m.group(1))
    return frozenset(names)


@cache
def vcl_allowed() -> tuple[frozenset[str], frozenset[str]]:
    """The ``sub`` and ``import`` names the VCL templates can write."""
    text = "\n".join(t.read_text(encoding="utf-8")
                     for t in (ROOT / "templates" / "varnish").glob("*.j2"))
    subs = set(re.findall(r"\bsub\s+([A-Za-z_][A-Za-z0-9_]*)", text))
    imports = {"std", "var", "str", "header", "directors", "cookie", "xkey"}  # lower_varnish.py
    return frozenset(subs), frozenset(imports)


def _vcl_names(tokens: list[tuple[str, str]], keyword: str) -> set[str]:
    """Names after top-level ``keyword`` (``sub``/``import``)."""
    out, depth = set(), 0
    for i, (kind, value) in enumerate(tokens):
        if kind == "OP" and value in "{}":
            depth += 1 if value == "{" else -1
        elif depth == 0 and kind == "ID" and value == keyword and i + 1 < len(tokens):
            out.add(tokens[i + 1][1])
    return out


def read_back(files: tuple[OutputFile, ...]) -> str | None:
    """None when the outputs read back cleanly, else what is wrong."""
    texts = {f.path: f.text for f in files}
    if "nginx/nginx.conf" in texts:
        try:
            tree = nginx_tree(texts["nginx/nginx.conf"])
        except AssertionError as exc:
            return f"nginx.conf: {exc}"
        extra = set(nginx_directives(tree)) - nginx_allowed()
        if extra:
            return f"nginx.conf: directives the templates never write: {sorted(extra)}"
        modules = [a for a in nginx_args(tree, "load_module")
                   if len(a) != 1 or not a[0].endswith(("/ngx_http_cache_purge_module.so",
                                                         "/ngx_http_js_module.so"))]
        imports = nginx_args(tree, "js_import")
        if imports not in ([], [("cw", "from", "cachewright.js")]):
            return f"nginx.conf: unexpected js_import {imports}"
        if modules:
            return f"nginx.conf: unexpected load_module {modules}"
    if "varnish/default.vcl" in texts:
        tokens = vcl_tokens(texts["varnish/default.vcl"])
        if ("OP", '"') in tokens:
            return "default.vcl: a string is left open"
        decl = vcl_declarations(tokens)
        if decl["vcl"] != 1 or decl["C{"] or decl["include"]:
            return f"default.vcl: declarations {dict(decl)}"
        subs, imports = vcl_allowed()
        odd_subs = {s for s in _vcl_names(tokens, "sub") if s not in subs
                    and not re.fullmatch(r"cw_select_[0-9]+", s)}
        odd_imports = _vcl_names(tokens, "import") - imports
        if odd_subs or odd_imports:
            return f"default.vcl: unexpected subs {sorted(odd_subs)} / imports {sorted(odd_imports)}"
    return None


def _shape(exc: CachewrightError) -> str | None:
    lines = str(exc).splitlines()  # PolicyError: one problem a line, so no line may break
    if not lines:
        return f"{type(exc).__name__} without a message"
    bad = [line for line in lines if not _WHERE.match(line)]
    if bad:
        return f"{type(exc).__name__} line without file:line:col: {bad[0]!r}\n{exc}"
    unprintable = [line for line in lines if not line.isprintable()]
    if unprintable:  # a terminal would act on it (escape sequences, bidi overrides)
        return f"{type(exc).__name__} line with an unprintable character: {unprintable[0]!r}"
    return None


def classify(text: str) -> Result:
    """Run one input through ``loads`` and ``compile_policy`` and judge the outcome."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        re.purge()  # a cached pattern would hide the warning re gives when it compiles one
        try:
            compiled = compile_policy(loads(text, FILENAME))
        except (PolicyError, CapabilityError) as exc:
            problem = _shape(exc)
            result = Result("failure", problem) if problem else Result("error", str(exc))
        except RecursionError:
            result = Result("failure", "RecursionError")
        except Exception as exc:  # the very thing being looked for
            result = Result("failure", f"{type(exc).__name__}: {exc}")
        else:
            problem = read_back(compiled.files)
            result = Result("failure", problem) if problem else Result("compiled", "", compiled)
    if caught and result.kind != "failure":
        return Result("failure", f"warning: {caught[0].category.__name__}: {caught[0].message}")
    return result


# --------------------------------------------------------------------------- strategies

KEYS = ("version", "name", "origin", "url", "host_header", "probe", "path", "interval", "timeout",
        "window", "threshold", "expected_status", "connect_timeout", "read_timeout", "listen",
        "http", "https", "address", "port", "certificate", "key", "profile", "redirect_http",
        "hsts", "max_age", "include_subdomains", "preload", "http2", "hosts", "cache", "size",
        "query", "ignore", "sort", "origin_headers", "default_ttl", "stale", "while_revalidate",
        "if_error", "collapse_requests", "status_ttl", "rules", "match", "path_prefix",
        "path_regex", "extensions", "methods", "host", "header", "cookie", "regex", "ttl",
        "strip_cookies", "vary", "headers", "cookies", "tags_from_header", "purge", "allow",
        "kinds", "soft", "cache_status", "cache_status_name", "accept_missing", "nginx", "varnish",
        "fleet", "tiers", "nodes", "engine", "routing", "health", "fail_timeout")
HOSTILE = ("; } { \" ' \\ $ ${x} # \"} \"\"\" C{", ";", "}", "{", '"', "'", "\\", "$", "${x}",
           "#", '"}', '"""', "C{ abort(); }C", "a\nb", "a\rb", "x\r\nX-Evil: 1", "a\x00b", "a\tb",
           "\x1b[31m", "a\x85b", "a\u202eb", "a\u200bb", "%00", "a b", "", " ",
           'x"; load_module /tmp/evil.so; #', "x;\nload_module /tmp/evil.so;",
           'x"} + ""); } sub vcl_init { C{ abort(); }C } sub x { if ("',
           'x"\n}\nsub vcl_init { return (fail); }\n#', "^.*(a|b)+[x-z]?\\d{2}$", "[[:alpha:]]",
           "(?<=a)b", "a{,3}", "\\x22}", "*.", "..", "/../", "-1", "1e309", "0x10", "9" * 30,
           "http://[::1", "http://a@b:1/", "::ffff:1.2.3.4/129", "é", "\U0001f600")
SCALARS = st.one_of(
    st.sampled_from(HOSTILE), st.text(max_size=20), st.integers(-2**70, 2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.booleans(), st.none(),
    st.sampled_from(["1s", "10m", "1h30m", "30d", "1y", "0", "1g", "256m", "GET", "respect",
                     "override", "modern", "url", "tag", "/a/", "^/x", "http://127.0.0.1:1",
                     "127.0.0.1", "10.0.0.0/8", "a.example", "*.example.com", "X-Hdr"]),
)
DOCS = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.integers(100, 599), st.text(max_size=6)),
                        inner, max_size=6)),
    max_leaves=30,
)
TOP = st.dictionaries(st.sampled_from(KEYS), DOCS, max_size=8)
RAW_YAML = st.one_of(
    st.text(max_size=200),
    st.lists(st.sampled_from(["version: 1", "name: x", "origin:", "  url: http://a:1", "listen:",
                              "  http: {port: 80}", "rules:", "  - name: r", "    match: {",
                              "- &a [*a]", "&x a", "*x", "!!python/object:os.system x", "? [a]",
                              "%YAML 1.1", "---", "...", "\t- x", "  ttl: 1h", "key: [", "'",
                              '"\\x', "<<: *x", "a: !!binary Zm9v", "a: !!timestamp 2001-1-1"]),
             max_size=12).map("\n".join),
)


def _yaml(doc: Any) -> str:
    try:
        return yaml.dump(doc, allow_unicode=True, sort_keys=False, width=1 << 20,
                         Dumper=yaml.CSafeDumper)
    except (yaml.YAMLError, ValueError, OverflowError):
        return repr(doc)


def random_documents() -> st.SearchStrategy[str]:
    """Random YAML: mostly mappings with policy-ish keys, also any value and raw text."""
    return st.one_of(TOP.map(_yaml), DOCS.map(_yaml), RAW_YAML)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Paths of every leaf and every container in a document."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _set(doc: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> None:
    node = doc
    for key in path[:-1]:
        node = node[key]
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value


@st.composite
def mutated_policies(draw: st.DrawFn) -> str:
    """A valid random policy with 1-3 mutations: a hostile string spliced into (or replacing)
    a string field, any value replaced, or a key dropped."""
    doc = draw(policy_docs())
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        strings = [p for p in paths if isinstance(_get(doc, p), str)]
        how = draw(st.sampled_from(["splice", "splice", "splice", "replace", "drop"]))
        if how == "splice" and strings:
            path = draw(st.sampled_from(strings))
            old: str = _get(doc, path)
            at = draw(st.integers(0, len(old)))
            hostile = draw(st.sampled_from(HOSTILE))
            _set(doc, path, old[:at] + hostile + old[at:])
        elif how == "replace" and paths:
            _set(doc, draw(st.sampled_from(paths)), draw(SCALARS))
        elif how == "drop" and paths:
            path = draw(st.sampled_from(paths))
            if not isinstance(path[-1], int):
                _set(doc, path, None, delete=True)
    return dump(doc) if draw(st.integers(0, 9)) else _yaml(doc)


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def any_input() -> st.SearchStrategy[str]:
    return st.one_of(random_documents(), mutated_policies())


# --------------------------------------------------------------------------- tests


def _run(strategy: st.SearchStrategy[str], on_compiled: Callable[[str, Compiled], None]
         | None = None) -> dict[str, int]:
    kinds = {"error": 0, "compiled": 0}

    @SETTINGS
    @given(text=strategy)
    def run(text: str) -> None:
        result = classify(text)
        assert result.kind != "failure", f"{result.detail}\n--- input ---\n{text}"
        kinds[result.kind] += 1
        if on_compiled and result.compiled is not None:
            on_compiled(text, result.compiled)

    run()
    return kinds


def test_random_yaml_ends_in_a_positioned_error_or_clean_files() -> None:
    kinds = _run(random_documents())
    assert kinds["error"] >= EXAMPLES // 2


def test_mutated_policies_end_in_a_positioned_error_or_clean_files() -> None:
    kinds = _run(mutated_policies())
    # Both outcomes occur (not a vacuous run); how many compile varies a lot from run to run
    # (5 to 36 of 300 in 25 runs), so the bound is low.
    assert kinds["compiled"] >= 3 and kinds["error"] >= 10, kinds


def test_the_oracle_catches_injection_and_unpositioned_errors() -> None:
    """The read-back check and the error-shape check are not vacuous."""
    base = compile_policy(loads("version: 1\nname: x\norigin: {url: 'http://a:1'}\n"
                                "listen: {http: {port: 80}}\n", FILENAME))
    assert read_back(base.files) is None

    def edited(path: str, old: str, new: str) -> tuple[OutputFile, ...]:
        return tuple(OutputFile(f.path, f.text.replace(old, new, 1), f.mode) if f.path == path
                     else f for f in base.files)

    assert "load_module" in (read_back(edited("nginx/nginx.conf", "events {",
                                               "load_module /tmp/e.so;\nevents {")) or "")
    assert "lua_code" in (read_back(edited("nginx/nginx.conf", "events {",
                                           "lua_code x;\nevents {")) or "")
    assert "C{" in (read_back(edited("varnish/default.vcl", "sub vcl_recv {",
                                     "C{ x }C\nsub vcl_recv {")) or "")
    assert "subs" in (read_back(edited("varnish/default.vcl", "sub vcl_recv {",
                                       "sub evil { }\nsub vcl_recv {")) or "")
    assert _shape(CapabilityError("no position here")) is not None
    assert _shape(PolicyError([Problem(FILENAME, 1, 1, "a\nb", "unknown key")])) is not None
    assert _shape(PolicyError([Problem(FILENAME, 1, 1, "", "a\x1b[31m")])) is not None
    assert classify("version: 1\n").kind == "error"


# Found by this fuzzer (docs/fuzzing.md): a mapping key with a line break split its problem over
# two lines, and a control character in the text gave PyYAML's reader error without a position.
@pytest.mark.parametrize("text", ['? "a\\nb"\n: 1\n', "name: a\x07b\n"], ids=["key", "reader"])
def test_fixed_findings_end_in_a_positioned_error(text: str) -> None:
    result = classify(text)
    assert result.kind == "error", result.detail


@pytest.mark.engine
@pytest.mark.slow
def test_a_sample_of_fuzzed_outputs_passes_the_real_engines() -> None:
    """nginx -t, varnishd -C and hitch --test accept a sample of what the mutated policies
    compile to."""
    sample: dict[str, tuple[OutputFile, ...]] = {}

    def keep(text: str, compiled: Compiled) -> None:
        if len(sample) < ENGINE_SAMPLE:
            sample[text] = compiled.files

    for _ in range(3):  # one run of 300 inputs compiles as few as 5 of them
        if len(sample) < ENGINE_SAMPLE:
            _run(mutated_policies(), keep)
    assert len(sample) >= ENGINE_SAMPLE // 2
    verdicts = verify_many(sample, POLICY_DIR)
    rejected = {t: m for t, m in verdicts.items() if m}
    assert not rejected, "\n\n".join(f"--- policy ---\n{t}--- engines ---\n{m}"
                                     for t, m in rejected.items())
