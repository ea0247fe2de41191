"""Shared helpers for the hostile-value and property tests: reading generated configs back the way
the engines read them (nginx through ``crossplane``, VCL through a small lexer that follows VCC's
string rules), running the real engine checks in parallel, and hypothesis strategies that build
random valid policies as YAML text.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tempfile
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import crossplane
import yaml
from hypothesis import strategies as st

from cachewright.generator.errors import CachewrightError
from cachewright.generator.render import OutputFile
from cachewright.harness.engines.verify import verify

K = TypeVar("K")
WORKERS = max(2, os.cpu_count() or 2)


def dump(doc: Mapping[str, Any]) -> str:
    """Policy YAML text for ``doc`` (strings are escaped by the YAML emitter where needed; raw
    UTF-8 unless that does not read back, as with U+0085, which PyYAML writes raw but reads as a
    line break)."""
    options: dict[str, Any] = {"sort_keys": False, "width": 1 << 20, "Dumper": yaml.CSafeDumper}
    text = str(yaml.dump(dict(doc), allow_unicode=True, **options))  # Any in the stubs
    if re.search("[\x85\u2028\u2029]", text) and yaml.load(text, yaml.CSafeLoader) != doc:
        text = str(yaml.dump(dict(doc), allow_unicode=False, **options))
    return text


def file_text(files: Iterable[OutputFile], path: str) -> str | None:
    return next((f.text for f in files if f.path == path), None)


# --------------------------------------------------------------------------- nginx, read back

# Blocks whose children are data ("key value;"), not directives; crossplane parses them as if the
# key were a directive name.
_DATA_BLOCKS = {"map", "geo", "types", "split_clients", "match"}
_NGINX_ESCAPES = {'"': '"', "'": "'", "\\": "\\", "t": "\t", "r": "\r", "n": "\n"}

Entry = tuple[str, tuple[str, ...], tuple[Any, ...] | None]


def nginx_unescape(token: str) -> str:
    """What nginx's config reader makes of a token crossplane returns (crossplane un-escapes only
    the enclosing quote; nginx also turns \\\\, \\', \\t, \\r, \\n into their characters)."""
    return re.sub(r"\\(.)", lambda m: _NGINX_ESCAPES.get(m.group(1), m.group(0)), token, flags=re.S)


def nginx_tree(text: str) -> tuple[Entry, ...]:
    """``nginx.conf`` parsed by crossplane into ``(directive, args, block)`` entries, args as nginx
    reads them; entries of data blocks (``map``, ``geo``) become ``("<entry>", (key, *values))``.
    Raises AssertionError when crossplane cannot parse the file."""
    with tempfile.TemporaryDirectory(prefix="cw-crossplane-") as tmp:
        conf = Path(tmp) / "nginx.conf"
        conf.write_text(text, encoding="utf-8")
        payload = crossplane.parse(str(conf), comments=False, single=True, check_ctx=False,
                                   check_args=False)
    errors = [e for c in payload["config"] for e in c["errors"]] + payload["errors"]
    assert payload["status"] == "ok" and not errors, f"crossplane cannot parse: {errors}"
    return _entries(payload["config"][0]["parsed"], data=False)


def _entries(parsed: list[dict[str, Any]], data: bool) -> tuple[Entry, ...]:
    out: list[Entry] = []
    for d in parsed:
        args = tuple(nginx_unescape(a) for a in d["args"])
        if data:
            out.append(("<entry>", (nginx_unescape(d["directive"]), *args), None))
            continue
        block = d.get("block")
        children = None if block is None else _entries(block, d["directive"] in _DATA_BLOCKS)
        out.append((d["directive"], args, children))
    return tuple(out)


def nginx_directives(tree: Sequence[Entry]) -> Counter[str]:
    """Every directive name in the tree, counted (data entries count as ``<entry>``)."""
    names: Counter[str] = Counter()
    for name, _, block in tree:
        names[name] += 1
        if block is not None:
            names.update(nginx_directives(block))
    return names


def nginx_map_keys(tree: Sequence[Entry], source: str | None = None) -> list[str]:
    """The keys of every ``map`` (whose source is ``source``, when given)."""
    keys = []
    for name, args, block in tree:
        if block is None:
            continue
        if name == "map" and (source is None or args[0] == source):
            keys += [entry[1][0] for entry in block]
        else:
            keys += nginx_map_keys(block, source)
    return keys


def nginx_args(tree: Sequence[Entry], directive: str) -> list[tuple[str, ...]]:
    """The arguments of every ``directive`` in the tree."""
    out = []
    for name, args, block in tree:
        if name == directive:
            out.append(args)
        if block is not None:
            out += nginx_args(block, directive)
    return out


# --------------------------------------------------------------------------- VCL, read back

_VCL_TOKEN = re.compile(r'''
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<csrc>C\{.*?\}C)
  | (?P<lstr>\{".*?"\})
  | (?P<tstr>""".*?""")
  | (?P<str>"[^"\n]*")
  | (?P<num>[0-9]+(?:\.[0-9]+)?)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_.-]*)
  | (?P<op>==|!=|!~|&&|\|\||<=|>=|\+=|-=|\*=|/=|.)
''', re.S | re.X)
VCL_DECLARATIONS = ("vcl", "import", "include", "backend", "probe", "acl", "sub")

Token = tuple[str, str]


def vcl_tokens(text: str) -> list[Token]:
    """VCL as VCC tokenises it: ``(kind, text)`` with kind ``STR`` (text: the string's content,
    whichever of the three string forms held it), ``CSRC`` (inline C), ``NUM``, ``ID`` or ``OP``;
    comments and white space dropped."""
    out: list[Token] = []
    for m in _VCL_TOKEN.finditer(text):
        kind, value = m.lastgroup, m.group()
        if kind in ("ws", "comment"):
            continue
        if kind == "lstr":
            out.append(("STR", value[2:-2]))
        elif kind == "tstr":
            out.append(("STR", value[3:-3]))
        elif kind == "str":
            out.append(("STR", value[1:-1]))
        else:
            out.append(({"csrc": "CSRC", "num": "NUM", "ident": "ID"}.get(str(kind), "OP"), value))
    return out


def vcl_declarations(tokens: Sequence[Token]) -> Counter[str]:
    """Top-level declarations (``sub``, ``import``, ``backend``, ...) and inline C blocks."""
    counts: Counter[str] = Counter()
    depth = 0
    for kind, value in tokens:
        if kind == "CSRC":
            counts["C{"] += 1
        elif kind == "OP" and value == "{":
            depth += 1
        elif kind == "OP" and value == "}":
            depth -= 1
        elif kind == "ID" and depth == 0 and value in VCL_DECLARATIONS:
            counts[value] += 1
    return counts


# --------------------------------------------------------------------------- real engine checks


def verify_files(files: Sequence[OutputFile], policy_dir: Path) -> str | None:
    """None when every engine accepts ``files``, else the engine's message."""
    try:
        verify(files, policy_dir)
    except CachewrightError as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def verify_many(jobs: Mapping[K, Sequence[OutputFile]], policy_dir: Path) -> dict[K, str | None]:
    """``verify_files`` for every job, ``WORKERS`` at a time (varnishd -C runs a C compiler)."""
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:
        futures = {key: pool.submit(verify_files, files, policy_dir) for key, files in jobs.items()}
    return {key: future.result() for key, future in futures.items()}


# --------------------------------------------------------------------------- strategies

LABEL = st.from_regex(r"[a-z0-9](?:[a-z0-9-]{0,6}[a-z0-9])?", fullmatch=True)
HOST = st.builds(lambda wild, labels: ("*." if wild else "") + ".".join(labels),
                 st.booleans(), st.lists(LABEL, min_size=1, max_size=3))
HEADER_NAME = st.one_of(
    st.sampled_from(["Accept-Language", "Accept", "X-Api-Version", "Authorization", "Host",
                     "User-Agent", "Cookie", "Origin", "X-Forwarded-Proto"]),
    st.from_regex(r"[A-Za-z][A-Za-z0-9-]{0,12}", fullmatch=True),
)
COOKIE_NAME = st.from_regex(r"[A-Za-z0-9!#%&*+.^_|~-]{1,12}", fullmatch=True)
RULE_NAME = st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True).filter(lambda n: n != "default")
PATH_CHAR = st.one_of(
    st.sampled_from(list("abcxyzABZ0189-._~!$&'()*+,;=:@/")),
    st.builds(lambda a, b: f"%{a}{b}", st.sampled_from("0123456789abcdefABCDEF"),
              st.sampled_from("0123456789abcdefABCDEF")),
)
PATH_PREFIX = st.builds(lambda chars: "/" + "".join(chars), st.lists(PATH_CHAR, max_size=12))
# Regex pieces PCRE and Python read alike; a bare '"' is allowed inside (not last, never '"}').
REGEX_ATOM = st.sampled_from([
    "a", "z", "0", "/", "-", "_", r"\.", ".", ".*", ".+", "[a-z]+", "[0-9]{1,3}", r"\d+", r"\w",
    "(?:ab|cd)", "(?:x)?", "[^/]*", "%20", ";", ":", "=", "@", "'", ",", r"\?", r"\$", "~", "!",
    "&", r"\{", r"\}", " ", "#", r"\x22", r"\\", '"', "{", "$x", "(?i:q)", r"\s", r"\b",
])
DURATION = st.one_of(st.integers(0, 10 * 86400),
                     st.sampled_from(["0", "1s", "10s", "5m", "1h30m", "2h", "30d", "1w", "1y"]))
POSITIVE_DURATION = st.sampled_from([1, 60, 3600, "10s", "5m", "1h30m", "30d", "1y"])
# Relative, without dot segments (verify writes stand-ins for missing files under its temporary
# directory), and with "key" in the key's file name (how verify's stand-in tells them apart).
_DIRS = st.from_regex(r"(?:[A-Za-z0-9_-][A-Za-z0-9_.-]{0,7}/){0,2}", fullmatch=True)
CERT_PATH = st.builds(lambda d, n: f"{d}{n}.crt", _DIRS, st.from_regex(r"[A-Za-z0-9_-]{1,8}",
                                                                         fullmatch=True))
KEY_PATH = st.builds(lambda d, n: f"{d}{n}key.pem", _DIRS, st.from_regex(r"[A-Za-z0-9_-]{0,8}",
                                                                           fullmatch=True))
VARNISH_ONLY = ("origin.probe", "query.sort", "purge.pattern", "purge.tag", "purge.all",
                "purge.soft")


def seconds(duration: int | str) -> int:
    """Enough of the duration grammar to know whether a drawn duration is zero."""
    if isinstance(duration, int):
        return duration
    return 0 if duration == "0" else 1


@st.composite
def regexes(draw: st.DrawFn) -> str:
    body = "".join(draw(st.lists(REGEX_ATOM, min_size=1, max_size=6)))
    if body.endswith('"'):
        body += "a"
    prefix = draw(st.sampled_from(["", "^", "(?i)", "^/"]))
    return prefix + body + draw(st.sampled_from(["", "$"]))


@st.composite
def networks(draw: st.DrawFn) -> str:
    if draw(st.booleans()):
        bits = draw(st.integers(0, 32))
        net = ipaddress.ip_network((draw(st.integers(0, 2**32 - 1)), bits), strict=False)
    else:
        bits = draw(st.integers(0, 128))
        net = ipaddress.ip_network((draw(st.integers(0, 2**128 - 1)), bits), strict=False)
    return str(net)


def _value_matches(name: st.SearchStrategy[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    item = st.builds(lambda n, rx: {"name": n, **({"regex": rx} if rx is not None else {})},
                     name, st.none() | regexes())
    return st.lists(item, max_size=2, unique_by=lambda d: d["name"])


@st.composite
def matches(draw: st.DrawFn, index: int) -> dict[str, Any]:
    match: dict[str, Any] = {}
    if draw(st.integers(0, 9)) < 7:
        own = draw(st.booleans())
        match["path_prefix"] = f"/r{index}/" if own else draw(PATH_PREFIX)
    if draw(st.integers(0, 9)) < 3:
        match["path_regex"] = draw(regexes())
    if draw(st.integers(0, 9)) < 3:
        match["extensions"] = draw(st.lists(st.from_regex(r"[A-Za-z0-9]{1,5}", fullmatch=True),
                                            min_size=1, max_size=3, unique_by=str.lower))
    if draw(st.integers(0, 9)) < 2:
        match["methods"] = draw(st.lists(st.sampled_from(
            ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]), min_size=1,
            max_size=3, unique=True))
    if draw(st.integers(0, 9)) < 2:
        hosts = draw(st.lists(HOST, min_size=1, max_size=2, unique=True))
        match["host"] = hosts[0] if len(hosts) == 1 and draw(st.booleans()) else hosts
    if draw(st.integers(0, 9)) < 2:
        match["header"] = draw(_value_matches(HEADER_NAME))
    if draw(st.integers(0, 9)) < 2:
        match["cookie"] = draw(_value_matches(COOKIE_NAME))
    match = {k: v for k, v in match.items() if v != []}
    if not match:
        match["path_prefix"] = f"/r{index}/"
    return match


@st.composite
def rules(draw: st.DrawFn, index: int, default_ttl: int) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": f"{draw(RULE_NAME)}-{index}", "match": draw(matches(index))}
    if not draw(st.integers(0, 4)):
        rule["cache"] = False
        return rule
    ttl = draw(st.none() | DURATION)
    methods = rule["match"].get("methods")
    if ttl is not None:
        rule["ttl"] = ttl
        if methods and not {"GET", "HEAD"} & set(methods):
            methods.append("GET")
    if draw(st.booleans()) and (seconds(ttl or 0) or default_ttl):
        rule["origin_headers"] = draw(st.sampled_from(["respect", "override"]))
    strip = draw(st.booleans())
    if strip:
        rule["strip_cookies"] = True
    if draw(st.booleans()):
        rule["vary"] = draw(st.lists(HEADER_NAME, min_size=1, max_size=2, unique=True))
    if draw(st.booleans()):
        key = {"headers": draw(st.lists(HEADER_NAME, max_size=2, unique=True))}
        if not strip:
            key["cookies"] = draw(st.lists(COOKIE_NAME, max_size=2, unique=True))
        rule["key"] = key
    if draw(st.integers(0, 3)) == 0:
        rule["tags_from_header"] = draw(HEADER_NAME)
    return rule


@st.composite
def listens(draw: st.DrawFn) -> dict[str, Any]:
    address = st.sampled_from(["0.0.0.0", "127.0.0.1", "[::1]", "[::]"])
    ports = draw(st.lists(st.integers(1, 65535), min_size=2, max_size=2, unique=True))
    listen: dict[str, Any] = {}
    kind = draw(st.sampled_from(["http", "https", "both"]))
    if kind != "https":
        listen["http"] = {"address": draw(address), "port": ports[0]}
    if kind != "http":
        https: dict[str, Any] = {
            "address": draw(address), "port": ports[1], "certificate": draw(CERT_PATH),
            "key": draw(KEY_PATH), "profile": draw(st.sampled_from(["modern", "intermediate",
                                                                     "old"])),
            "http2": draw(st.booleans()),
        }
        if kind == "both":
            https["redirect_http"] = draw(st.booleans())
        if draw(st.booleans()):
            https["hsts"] = {"max_age": draw(POSITIVE_DURATION),
                             "include_subdomains": draw(st.booleans()),
                             "preload": draw(st.booleans())}
        listen["https"] = https
    listen["hosts"] = draw(st.lists(HOST, max_size=3, unique=True))
    return listen


@st.composite
def origins(draw: st.DrawFn) -> dict[str, Any]:
    servers = st.sampled_from(["127.0.0.1", "127.0.0.2", "localhost"])
    urls = draw(st.lists(st.builds(lambda h, p: f"http://{h}:{p}", servers,
                                   st.integers(1, 65535)), min_size=1, max_size=3, unique=True))
    origin: dict[str, Any] = {"url": urls[0] if len(urls) == 1 else urls}
    if draw(st.booleans()):
        origin["host_header"] = draw(HOST.filter(lambda h: not h.startswith("*.")))
    if draw(st.integers(0, 4)) == 0:
        origin["probe"] = {"path": draw(PATH_PREFIX), "interval": draw(POSITIVE_DURATION)}
    return origin


@st.composite
def purges(draw: st.DrawFn, rule_list: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """A ``purge`` section; tag purging only where a rule takes tags from a header."""
    kinds = draw(st.lists(st.sampled_from(["url", "pattern", "tag", "all"]), min_size=1,
                          max_size=4, unique=True))
    if not any("tags_from_header" in r for r in rule_list):
        kinds = [k for k in kinds if k != "tag"] or ["url"]
    return {"allow": draw(st.lists(networks(), min_size=1, max_size=3, unique=True)),
            "kinds": kinds, "soft": draw(st.integers(0, 3)) == 0}


def nginx_missing(doc: Mapping[str, Any]) -> list[str]:
    """The features of ``doc`` nginx lacks, for its ``accept_missing.nginx``."""
    used = set()
    if "probe" in doc["origin"]:
        used.add("origin.probe")
    if doc["cache"]["query"]["sort"]:
        used.add("query.sort")
    if "purge" in doc:
        used |= {f"purge.{k}" for k in doc["purge"]["kinds"] if k != "url"}
        if doc["purge"]["soft"]:
            used.add("purge.soft")
    return sorted(used)


@st.composite
def policy_docs(draw: st.DrawFn) -> dict[str, Any]:
    """A random policy (as a mapping) that is valid apart, perhaps, from shadowed rules."""
    origin = draw(origins())
    key = ["scheme", "host", "path", "query"]
    key = [p for p in key if p == "path" or draw(st.booleans())]
    default_ttl = draw(st.sampled_from([0, 0, 60, 3600]))
    cache: dict[str, Any] = {
        "size": draw(st.sampled_from(["1m", "64m", "1g", "300m"])),
        "key": draw(st.permutations(key)),
        "origin_headers": "respect",
        "default_ttl": default_ttl,
        "stale": {"while_revalidate": draw(DURATION), "if_error": draw(DURATION)},
        "collapse_requests": draw(st.booleans()),
        "status_ttl": draw(st.dictionaries(st.integers(100, 599), DURATION, max_size=3)),
    }
    if default_ttl and draw(st.booleans()):
        cache["origin_headers"] = "override"
    query: dict[str, Any] = {"sort": draw(st.integers(0, 4)) == 0}
    if "query" in key:
        query["ignore"] = draw(st.lists(st.from_regex(r"[A-Za-z0-9_.*\[\]-]{1,8}",
                                                      fullmatch=True), max_size=3, unique=True))
    cache["query"] = query
    rule_list = [draw(rules(i, default_ttl)) for i in range(draw(st.integers(0, 5)))]
    doc: dict[str, Any] = {
        "version": 1,
        "name": draw(RULE_NAME),
        "origin": origin,
        "listen": draw(listens()),
        "cache": cache,
        "rules": rule_list,
        "headers": {"cache_status": draw(st.booleans()),
                    "cache_status_name": draw(st.from_regex(r"[a-z][a-z0-9_.-]{0,10}",
                                                            fullmatch=True))},
    }
    if draw(st.booleans()):
        doc["purge"] = draw(purges(rule_list))
    missing = nginx_missing(doc)
    if missing:
        doc["accept_missing"] = {"nginx": missing}
    return doc


def policies() -> st.SearchStrategy[str]:
    """Random policies as YAML text."""
    return policy_docs().map(dump)


Rep = tuple[str, str, bool]


def replace_all(text: str, reps: Sequence[Rep]) -> str:
    """``text`` with each ``(old, new, exact)`` applied in order: ``exact`` ones only when the
    whole text is ``old``, the others as substring replacements."""
    for old, new, exact in reps:
        if exact:
            text = new if text == old else text
        else:
            text = text.replace(old, new)
    return text

