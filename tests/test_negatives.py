"""Every check in the registry has a negative: a hand-edited ("tampered") configuration that the
check fails on the real engines, so a check that can never fail cannot hide among the others.

The registry is ``harness.checks.derive(policy)`` walked over the example policies and
``POLICY`` below. A check *family* is its id with the rule name (and a status code) replaced by
``*`` (``rule.*.ttl``, ``cache.status_ttl.*``). ``NEGATIVES`` maps every family to its
negatives: a test elsewhere that already proves it (``Elsewhere``), a tampering in this file
(``Tampered``), or, for an engine where no configuration can fail it, the reason
(``NoNegative``). A family in the registry without an entry fails
``test_every_check_family_has_a_negative``, so adding a check without a negative fails CI; an
engine that has the behaviour but no negative must be listed, with why, in ``ONE_ENGINE``.

The tamperings here are plausible mistakes (``MISTAKES``: a header strip, a TTL, a guard or a
key part gone), grouped so that one ``cachewright test`` run carries many edits on checks that do
not share them: ``POLICY`` runs once untouched (every tampered check passes) and once per group
(every check of the group fails, for the reason its message names, on each engine the table
says). Each edit asserts that the text it changes is still there, so a template change that makes
an edit a no-op fails loudly, without engines (``test_every_edit_applies_to_the_compiled_config``)
and with them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tampering import tamper

from cachewright.generator import nginx_dispatch
from cachewright.generator.capabilities import FEATURES
from cachewright.generator.load import load, loads
from cachewright.generator.model import Policy
from cachewright.generator.pipeline import compile_policy
from cachewright.generator.quote import nginx_str
from cachewright.harness.checks import Check, derive
from cachewright.harness.checks.security import SUITE
from cachewright.harness.cli import main

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*/policy.yaml"))
ENGINES = ("nginx", "varnish")

# Short stale windows (the window check waits them out), a short read timeout (the timeout
# checks wait it out), two hosts, both schemes on one key, every purge kind, and rules that
# give each family a check: a bypass, keyed, stripping, overlapping and varying rule.
POLICY = """\
version: 1
name: negatives
origin: {url: http://app:8000, read_timeout: 2s, connect_timeout: 2s}
listen:
  http: {port: 80}
  https: {port: 443, certificate: a.crt, key: a.key, redirect_http: false}
  hosts: [a.example.com, b.example.com]
cache:
  default_ttl: 2m
  origin_headers: respect
  query: {ignore: [utm_*], sort: true}
  stale: {while_revalidate: 2s, if_error: 3s}
  status_ttl: {404: 1m, 503: 5s}
rules:
  - name: account
    match: {path_prefix: /account}
    cache: false
  - name: me
    match: {path_prefix: /me/}
    ttl: 1m
    key: {headers: [X-Token], cookies: [currency]}
  - name: assets
    match: {path_prefix: /assets/}
    ttl: 10m
    origin_headers: override
    strip_cookies: true
  - name: media
    match: {extensions: [css, png]}
    ttl: 7d
  - name: api
    match: {path_prefix: /api/}
    ttl: 10m
    vary: [Accept-Language]
    tags_from_header: Surrogate-Key
purge:
  allow: [127.0.0.1/32]
  kinds: [url, pattern, tag, all]
accept_missing: {nginx: [query.sort, purge.pattern, purge.tag, purge.all]}
"""


def negatives_policy() -> Policy:
    return loads(POLICY, "negatives.yaml")


# --------------------------------------------------------------------------- families


def family(check_id: str, policy: Policy) -> str:
    """``check_id`` with its rule's name, and a trailing status code, replaced by ``*``."""
    names = sorted((r.name for r in (*policy.rules, policy.default_rule)), key=len, reverse=True)
    for name in names:
        prefix = f"rule.{name}"
        if check_id == prefix or check_id.startswith(prefix + "."):
            check_id = "rule.*" + check_id[len(prefix):]
            break
    return re.sub(r"\.\d{3}$", ".*", check_id)


@functools.cache
def registry() -> dict[str, tuple[str, Check]]:
    """Every check family the registry derives from the examples and ``POLICY``, with one check
    of it (and the policy it came from, for the messages)."""
    found: dict[str, tuple[str, Check]] = {}
    policies = [(p.parent.name, load(p)) for p in EXAMPLES]
    for label, policy in [*policies, ("negatives", negatives_policy())]:
        for check in derive(policy):
            found.setdefault(family(check.id, policy), (f"{check.id} ({label})", check))
    return found


# --------------------------------------------------------------------------- editing helpers

Edit = Callable[[str], str]


def replace(old: str, new: str) -> Edit:
    """Replace ``old`` (which must be there) by ``new``, everywhere."""
    def edit(text: str) -> str:
        assert old in text, f"{old!r} not found: the template changed, update this tampering"
        return text.replace(old, new)
    return edit


def sub(pattern: str, new: str | Callable[[re.Match[str]], str]) -> Edit:
    """Replace every match of ``pattern`` (there must be one) by ``new``."""
    def edit(text: str) -> str:
        text, n = re.subn(pattern, new, text)
        assert n, f"{pattern!r} not found: the template changed, update this tampering"
        return text
    return edit


def chain(*edits: Edit) -> Edit:
    """The edits one after another."""
    def edit(text: str) -> str:
        for one in edits:
            text = one(text)
        return text
    return edit


_SECTION = r"(?m)^(?=[ \t]*# (?:cachewright: )?rule )"


def in_sections(heading: str, edit: Edit) -> Edit:
    """``edit`` applied to each section (from a ``# cachewright: rule ...`` comment to the next)
    whose comment matches ``heading``; it must apply to at least one."""
    def scoped(text: str) -> str:
        parts = re.split(_SECTION, text)
        done = 0
        for i, part in enumerate(parts):
            if re.match(rf"\s*# cachewright: {heading}", part):
                try:
                    parts[i] = edit(part)
                except AssertionError:
                    continue  # e.g. the rule's purge location holds no such line
                done += 1
        assert done, f"no section {heading!r} holds the edited text: update this tampering"
        return "".join(parts)
    return scoped


def swap(first: str, second: str) -> Edit:
    """Swap each pair of adjacent sections (nginx's dispatch map entries ``# rule ...``, the
    VCL's rule branches ``# cachewright: rule ...``) of rule ``first`` then rule ``second``."""
    def edit(text: str) -> str:
        parts = re.split(_SECTION, text)
        swapped = 0
        for i in range(len(parts) - 1):
            if re.match(rf"\s*# (?:cachewright: )?rule {first}\b", parts[i]) and \
                    re.match(rf"\s*# (?:cachewright: )?rule {second}\b", parts[i + 1]):
                parts[i], parts[i + 1] = parts[i + 1], parts[i]
                swapped += 1
        assert swapped, f"no rule {first!r} right before {second!r}: update this tampering"
        return "".join(parts)
    return edit


# --------------------------------------------------------------------------- the mistakes


@dataclass(frozen=True)
class Mistake:
    """A plausible mistake as an edit of each engine's config (None where the engine cannot
    make it: the feature is unsupported there), run in ``group`` with the checks it must fail."""

    name: str
    group: str
    checks: tuple[str, ...]
    nginx: Edit | None
    varnish: Edit | None
    varnishd_args: Edit | None = None

    def edits(self) -> dict[str, Edit]:
        """The edits by compiled file path."""
        found = {"nginx/nginx.conf": self.nginx, "varnish/default.vcl": self.varnish,
                 "varnish/varnishd.args": self.varnishd_args}
        return {path: edit for path, edit in found.items() if edit is not None}


_NO_AUTH_LINE = r"\n\s*proxy_(?:cache_bypass|no_cache) \$http_authorization;"
_BYPASS = r"(proxy_(?:cache_bypass|no_cache)(?: [^ ;]+)*?) \$http_{}"
_METHODS = "|(?:POST|PUT|PATCH|DELETE|OPTIONS) [^ ]*)"
_VCL_METHODS = (r'\n    if \(req\.method != "GET" &&\n(?:\s+req\.method != "[A-Z]+" &&\n)*'
                r'\s+req\.method != "[A-Z]+"\) \{\n\s+return \(synth\(501, "Not Implemented"\)\);\n    \}')
_VCL_QUERY_SET = (r'\n\s*if \(var\.get\("query"\) == ""\) \{\n\s*set req\.url = [^\n]*\n'
                  r'\s*\} else \{\n\s*set req\.url = [^\n]*\n\s*\}')
_VCL_KEY_PARTS = (r'\n    hash_data\(([^\n]*)\);\n    if \(var\.get\("rule"\) == "me"\) \{\n'
                  r'((?:        hash_data\([^\n]*\);\n)+)    \}')


def _one_hash_data(match: re.Match[str]) -> str:
    """Rule me's key parts concatenated onto the URL in one hash_data (no separator)."""
    parts = [match[1], *re.findall(r"hash_data\((.*)\);", match[2])]
    return (f'\n    if (var.get("rule") == "me") {{\n        hash_data({" + ".join(parts)});\n'
            f"    }} else {{\n        hash_data({match[1]});\n    }}")


# Varnish: a request with Authorization passes, or (respect) is fetched as a miss
_AUTH_PASS = (r"req\.http\.Authorization \|\| req\.http\.Cookie|\n\s*if \(req\.http\.Authorization\) \{\n"
              r"\s*(?:call cw_pass|set req\.hash_always_miss = true;\n\s*var\.set\(\"pass\", \"1\"\));\n\s*\}")
# Varnish: a request with Cookie passes (with Authorization, or on its own under respect)
_COOKIE_PASS = (r"req\.http\.Authorization \|\| req\.http\.Cookie"
                r"|\n\s*if \(req\.http\.Cookie\) \{\n\s*call cw_pass;\n\s*\}")
_STRIPPED = ("X-Forwarded-Host", "X-Original-URL", "X-HTTP-Method-Override")
_HOST_OVERRIDES = ("X-Host", "X-Original-Host", "X-Forwarded-Server", "X-Forwarded-Port",
                   "X-Forwarded-Prefix", "X-Forwarded-Ssl", "X-Url-Scheme")
# Varnish fetches the whole body before delivering (a common setting): a connection closed
# mid-body then takes the error path (vcl_backend_error) instead of a cut-short stream.
_BUFFERED = replace("sub vcl_backend_response {\n", "sub vcl_backend_response {\n    set beresp.do_stream = false;\n")
_MAINTENANCE = ("        recursive_error_pages on;\n        error_page 502 504 =200 @cw_down;\n"
                '        location @cw_down {\n            return 200 "down for maintenance";\n        }\n')

MISTAKES = (
    Mistake("Authorization no longer bypasses the cache", "A",
            ("defaults.authorization", "security.private.authorization"),
            chain(sub(_NO_AUTH_LINE, ""), sub(_BYPASS.format("authorization"), r"\1"),
                  sub(r"(proxy_no_cache[^;\n]*) \$cw_auth_nostore", r"\1")),
            chain(sub(_AUTH_PASS, lambda m: "req.http.Cookie" if m[0].startswith("req") else ""),
                  replace("bereq.http.Authorization && beresp", "bereq.http.X-Cw-Never && beresp"))),
    Mistake("Set-Cookie ignored to make a rule cacheable", "A",
            ("defaults.set-cookie", "security.private.set-cookie"),
            chain(in_sections(r"rule media \(", replace("proxy_ignore_headers ",
                                                        "proxy_ignore_headers Set-Cookie ")),
                  sub(r'\n\s*"~\^\.K[^\n]*" 1;', "")),
            replace("beresp.http.Set-Cookie || ", "")),
    Mistake("private/no-store stored when overriding origin headers", "A",
            ("security.private.directives",),
            sub(r'\n\s*"[^"\n]*private\|no-store[^"\n]*" ps;', ""), None),
    Mistake("any method proxied", "A", ("defaults.methods", "security.methods.unsafe"),
            replace(_METHODS, "|[A-Z_-]+ [^ ]*)"), sub(_VCL_METHODS, "")),
    Mistake("override headers left out of the strip list", "A",
            ("defaults.forwarding-headers", "security.poisoning.forwarded-host",
             "security.poisoning.rewrite-url", "security.poisoning.method-override"),
            chain(*(replace(f'    proxy_set_header {h} "";\n', "") for h in _STRIPPED)),
            chain(*(replace(f"    unset bereq.http.{h};\n", "") for h in _STRIPPED))),
    Mistake("host and scheme overrides left out of the strip list", "B",
            ("security.poisoning.host-override", "security.poisoning.forwarded-prefix"),
            chain(*(replace(f'    proxy_set_header {h} "";\n', "") for h in _HOST_OVERRIDES)),
            chain(*(replace(f"    unset bereq.http.{h};\n", "") for h in _HOST_OVERRIDES))),
    Mistake("client X-Forwarded-Proto passed on", "B", ("security.poisoning.forwarded-proto",),
            replace("X-Forwarded-Proto $scheme;", "X-Forwarded-Proto $http_x_forwarded_proto;"), None),
    Mistake("no path guard", "A", ("defaults.path-guard", "security.deception.paths"),
            replace(nginx_str(nginx_dispatch.CLEAN_PATH)[1:-1], "[^?]*"),
            sub(r'if \(!str\.startswith\(req\.url, "/"\) \|\|[^{]*\) \{',
                'if (!str.startswith(req.url, "/")) {')),
    Mistake("any Host served", "B", ("security.host.unknown",),
            None, sub(r'\n    if \(req\.http\.host !~ [^\n]*\) \{\n\s*return \(synth\(421, [^\n]*\n    \}', "")),
    Mistake("ignored parameters kept", "A", ("cache.query.ignore", "security.fill.variants"),
            replace("(?:utm_[^&=]*)", "(?:cwnever)"), replace("(?:utm_[^&=]*)", "(?:cwnever)")),
    Mistake("query not sorted", "A", ("cache.query.sort",),
            None, replace("    set req.url = std.querysort(req.url);\n", "")),
    Mistake("404 kept ten times too long", "A", ("cache.status_ttl.404",),
            replace("proxy_cache_valid 404 1m;", "proxy_cache_valid 404 10m;"),
            sub(r"(beresp\.status == 404\) \{\n\s*set beresp\.ttl = )60s;", r"\g<1>600s;")),
    Mistake("host not in the key", "A", ("cache.key.host", "security.host.absolute-form"),
            replace('proxy_cache_key "$scheme://$host', 'proxy_cache_key "$scheme://'),
            replace("    hash_data(req.http.host);\n", "")),
    Mistake("no request collapsing", "A", ("cache.collapse_requests",),
            replace("proxy_cache_lock on;", "proxy_cache_lock off;"),
            replace("sub vcl_recv {\n", "sub vcl_recv {\n    set req.hash_ignore_busy = true;\n")),
    Mistake("stale-if-error window of an hour", "A", ("cache.stale.window",),
            None, chain(sub(r"set beresp\.grace = [1-9]\d*s;", "set beresp.grace = 3600s;"),
                        sub(r"set req\.grace = [1-9]\d*s;", "set req.grace = 3600s;"))),
    Mistake("an extension rule tried before an earlier prefix rule", "A", ("rule.assets.first-match",),
            swap("assets", "media"), swap("assets", "media")),
    Mistake("per-user key parts dropped", "A", ("rule.me.key",),
            sub(r"\\n[hc]:[a-z0-9_-]+:\$[a-z0-9_]+", ""),
            sub(r'\n    if \(var\.get\("rule"\) == "me"\) \{\n(?:\s+hash_data\([^\n]*\);\n)+\s+\}', "")),
    Mistake("origin Cache-Control ignored on a respecting rule", "A", ("rule.media.origin-headers",),
            in_sections(r"rule media \(", replace("proxy_ignore_headers ",
                                                  "proxy_ignore_headers Cache-Control Expires ")),
            in_sections(r"rule [^\n]*\bmedia\b[^\n]*\(profile", replace(
                'var.set("override", "");', 'var.set("override", "1");'))),
    Mistake("cookies not stripped", "A", ("rule.assets.strip-cookies",),
            sub(r'(\n\s*r3q?) "";', r"\1 $http_cookie;"),
            replace('var.set("rule", "assets");\n        unset req.http.Cookie;\n',
                    'var.set("rule", "assets");\n')),
    Mistake("tags read from the purge request's header", "A", ("purge.tag",),
            None, replace("set beresp.http.xkey = beresp.http.Surrogate-Key;",
                          "set beresp.http.xkey = beresp.http.Cache-Tags;")),
    Mistake("a Vary header hashed instead of varied", "A", ("purge.variants",),
            None, replace("    hash_data(req.url);\n",
                          "    hash_data(req.url);\n    hash_data(req.http.Accept-Language);\n")),
    Mistake("purge everything scoped to one host", "A", ("purge.all",),
            None, replace('std.ban("obj.status != 0")', 'std.ban("obj.http.X-Cw-Host == " + req.http.host)')),
    Mistake("PURGE drops one scheme's copy", "A", ("purge.schemes",),
            None, sub(r"(sub vcl_purge \{\n)(?:.*\n)*?    if \(req\.restarts == 0\) \{\n(?:.*\n)*?"
                      r"        return \(restart\);\n    \}\n", r"\1")),
    Mistake("origin errors answered 200 (nginx) or stored (Varnish)", "A",
            ("faults.down.fresh", "faults.close-mid-body.fresh"),
            replace("        error_page 405 =501 @cw_501;\n",
                    "        error_page 405 =501 @cw_501;\n" + _MAINTENANCE),
            chain(sub(r"(sub vcl_backend_error \{\n(?:.*\n)*?)    set beresp\.uncacheable = true;\n", r"\1"),
                  _BUFFERED)),
    Mistake("Forwarded no longer stripped", "A", ("security.poisoning.forwarded",),
            replace('    proxy_set_header Forwarded "";\n', ""), replace("    unset bereq.http.Forwarded;\n", "")),
    Mistake("ignored parameters dropped from the key only", "B", ("security.cloaking.query",),
            None, chain(sub(_VCL_QUERY_SET, ""),
                        replace("    hash_data(req.url);\n",
                                '    hash_data(regsub(req.url, "\\?.*$", "") + "?" + var.get("query"));\n'))),
    Mistake("key parts joined into one string", "B", ("security.host.key-collision",),
            None, sub(_VCL_KEY_PARTS, _one_hash_data)),
    Mistake("header size limits raised", "B", ("security.poisoning.oversized-header",),
            None, None, replace("-p default_keep=0\n", "-p default_keep=0\n-p http_req_hdr_len=64k\n")),
    Mistake("underscored header names forwarded", "A", ("security.poisoning.underscore-header",),
            replace("    server_tokens off;\n", "    server_tokens off;\n    underscores_in_headers on;\n"),
            replace("    unset bereq.http.X_Forwarded_Host;\n", "")),
    Mistake("cookies no longer bypass the cache", "B", ("defaults.cookies", "security.private.session-cookie"),
            sub(_BYPASS.format("cookie"), r"\1"),
            sub(_COOKIE_PASS, lambda m: "req.http.Authorization" if m[0].startswith("req") else "")),
    Mistake("scheme not in the key", "B", ("cache.key.scheme",),
            replace('proxy_cache_key "$scheme://', 'proxy_cache_key "'),
            replace('    hash_data(var.get("scheme"));\n', "")),
    Mistake("no stale serving", "B", ("cache.stale.while_revalidate", "cache.stale.if_error",
                                      "faults.timeout.stale", "faults.close-mid-body.stale"),
            sub(r"proxy_cache_use_stale [^;]*;", "proxy_cache_use_stale off;"),
            chain(sub(r"set beresp\.grace = [1-9]\d*s;", "set beresp.grace = 0s;"), _BUFFERED)),
    Mistake("the default rule's TTL lost", "B", ("rule.default",),
            in_sections(r"rule default \(", sub(r"\n\s*proxy_cache_valid 200 [^;]*;", "")),
            sub(r'(== "default"\) \{\n\s*set req\.http\.X-Cw-Ttl = )"\d+";', r'\1"0";')),
    Mistake("Vary not applied", "B", ("rule.api.vary",),
            sub(r"\\nv:accept-language:\$http_accept_language", ""),
            sub(r'\n\s*if \(!beresp\.http\.Vary\) \{\n(?:.*\n)*?\s*\} elsif \(beresp\.http\.Vary !~ '
                r'[^\n]*Accept-Language[^\n]*\{\n[^\n]*\n\s*\}', "")),
    Mistake("header names outside the token set passed on", "B", ("security.poisoning.malformed-header",),
            replace("    server_tokens off;\n", "    server_tokens off;\n    ignore_invalid_headers off;\n"), None),
    Mistake("a body on GET forwarded", "B", ("security.poisoning.get-body",),
            replace("(?:GET|HEAD) 0*|", "(?:GET|HEAD) [^ ]*|"),
            chain(replace('    if (bereq.method == "GET") {\n        unset bereq.body;\n    }\n', ""),
                  replace("sub vcl_recv {\n", "sub vcl_recv {\n    std.cache_req_body(64KB);\n"))),
)
GROUPS = tuple(sorted({m.group for m in MISTAKES}))


def mistake_for(check: str) -> Mistake:
    found = [m for m in MISTAKES if check in m.checks]
    assert len(found) == 1, f"{check}: {len(found)} mistakes name it, expected 1"
    return found[0]


# --------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Elsewhere:
    """A test in another file fails the family's check on a tampered config: ``test`` is
    ``path::function`` (``[case]`` for one case of a parametrised test) and it asserts on check
    ``mentions``."""

    test: str
    mentions: str
    engines: tuple[str, ...] = ENGINES


@dataclass(frozen=True)
class Tampered:
    """``check`` (an id of ``POLICY``) fails on ``engines`` in the run of the mistake that names
    it, with a message matching ``message``."""

    check: str
    message: str
    engines: tuple[str, ...] = ENGINES


@dataclass(frozen=True)
class NoNegative:
    """On ``engines`` no configuration fails the check: ``reason`` says why. Reported to the
    lead engineer (a check that cannot fail there guards the engine, not our config)."""

    engines: tuple[str, ...]
    reason: str


Negative = Elsewhere | Tampered | NoNegative

_NGINX, _VARNISH = ("nginx",), ("varnish",)
_SECURITY = "tests/test_security_checks.py::test_every_check_fails_on_an_unsafe_configuration"
_TLS = "tests/test_tls_checks.py::test_each_check_fails_on_a_broken_config"
_PURGE = "tests/test_purge_checks.py::"
_FAULTS = "tests/test_faults.py::"
_FLEET = "tests/test_fleet_harness.py::"
_STREAMED = ("nginx sends the origin's status and headers before the body and closes the client "
             "connection when the origin's body breaks off (the check accepts that: the client "
             "can tell), and never stores a cut-short body; no directive changes either")


def _security(ident: str, engines: tuple[str, ...], message: str = "",
              ours: tuple[str, ...] = ()) -> tuple[str, tuple[Negative, ...]]:
    """The security test's negative on ``engines``, plus this file's on ``ours``."""
    found: tuple[Negative, ...] = (Elsewhere(_SECURITY, ident, engines),)
    if ours:
        found += (Tampered(f"security.{ident}", message, ours),)
    return f"security.{ident}", found


def _tls(ident: str, case: str) -> tuple[str, tuple[Negative, ...]]:
    return f"tls.{ident}", (Elsewhere(f"{_TLS}[{case}]", f"tls.{ident}"),)


def _ours(check: str, message: str, engines: tuple[str, ...] = ENGINES) -> tuple[Negative, ...]:
    return (Tampered(check, message, engines),)


_LEAK = r"was served response|handed a cookie|served A's stored response"
_POISONED = r"the origin received client headers"

NEGATIVES: dict[str, tuple[Negative, ...]] = dict([
    # rules
    ("rule.*", _ours("rule.default", r"first request: bypass, expected miss|second request: miss, expected hit")),
    ("rule.*.first-match", _ours("rule.assets.first-match", "names rule 'media', expected 'assets'")),
    ("rule.*.ttl", (Elsewhere("tests/test_harness.py::test_a_hand_lowered_ttl_fails_the_ttl_check",
                              "rule.html.ttl"),)),
    ("rule.*.origin-headers", _ours("rule.media.origin-headers", r"expected 77s")),
    ("rule.*.key", _ours("rule.me.key", "origin saw 1 requests, expected 2")),
    ("rule.*.vary", _ours("rule.api.vary", r"expected 2 \(two variants\)")),
    ("rule.*.strip-cookies", _ours("rule.assets.strip-cookies", "origin saw Cookie")),
    # safe defaults
    ("defaults.authorization", _ours("defaults.authorization", "expected 3")),
    ("defaults.cookies", _ours("defaults.cookies", "origin saw 1 requests, expected 2")),
    ("defaults.set-cookie", _ours("defaults.set-cookie", "origin saw 1 requests, expected 2")),
    ("defaults.methods", _ours("defaults.methods", "method FOO answered 200")),
    ("defaults.forwarding-headers", _ours("defaults.forwarding-headers", "origin saw client-sent")),
    ("defaults.path-guard", _ours("defaults.path-guard", "answered 200, expected 400")),
    # cache-wide settings
    ("cache.query.ignore", _ours("cache.query.ignore", "were stored separately")),
    ("cache.query.sort", _ours("cache.query.sort", "stored separately", _VARNISH)),
    ("cache.status_ttl.*", _ours("cache.status_ttl.404", r"with TTL \[600\], expected 60s")),
    ("cache.key.host", _ours("cache.key.host", "b.example.com was served a.example.com's entry")),
    ("cache.key.scheme", _ours("cache.key.scheme", "http was served the https entry")),
    ("cache.stale.while_revalidate", _ours("cache.stale.while_revalidate", "waited for the origin")),
    ("cache.stale.if_error", _ours("cache.stale.if_error", "expected the stale copy")),
    ("cache.stale.window", _ours("cache.stale.window", "stale after the window", _VARNISH)),
    ("cache.collapse_requests", _ours("cache.collapse_requests", "8 concurrent misses made 8")),
    # purging
    ("purge.url", (Elsewhere(_PURGE + "test_purges_that_remove_nothing_fail_purge_url", "purge.url"),)),
    ("purge.refused", (Elsewhere(_PURGE + "test_an_outsider_who_may_purge_fails_purge_refused",
                                 "purge.refused"),)),
    ("purge.pattern", (Elsewhere(_PURGE + "test_purges_that_remove_nothing_fail_purge_url",
                                 "purge.pattern", _VARNISH),)),
    ("purge.tag", _ours("purge.tag", "after purging tag", _VARNISH)),
    ("purge.variants", _ours("purge.variants", "after PURGE without Accept-Language", _VARNISH)),
    ("purge.schemes", _ours("purge.schemes", r"\(https copy\)", _VARNISH)),
    ("purge.all", _ours("purge.all", "after purging everything: b.example.com", _VARNISH)),
    # TLS
    _tls("handshake", "no-ecdhe-gcm"),
    _tls("refuses-old-protocols", "old-protocols-allowed"),
    _tls("refuses-no-forward-secrecy", "rsa-key-exchange-allowed"),
    _tls("alpn", "http2-dropped"),
    _tls("redirect", "redirect-loses-port"),
    _tls("hsts", "hsts-dropped"),
    _tls("hit", "https-not-cached"),
    _tls("redirect-not-shared", "scheme-not-in-key"),
    _tls("forwarded", "client-forwarded-proto-kept"),
    # the security suite
    _security("private.authorization", _NGINX, _LEAK, _VARNISH),
    _security("private.session-cookie", _VARNISH, _LEAK, _NGINX),
    _security("private.set-cookie", _VARNISH, _LEAK, _NGINX),
    _security("private.directives", _VARNISH, "answer was served again", _NGINX),
    _security("poisoning.forwarded-host", _NGINX, _POISONED, _VARNISH),
    ("security.poisoning.forwarded", _ours("security.poisoning.forwarded", _POISONED)),
    ("security.poisoning.host-override", _ours("security.poisoning.host-override", _POISONED)),
    ("security.poisoning.forwarded-prefix", _ours("security.poisoning.forwarded-prefix", _POISONED)),
    _security("poisoning.forwarded-proto", _VARNISH, "X-Forwarded-Proto", _NGINX),
    _security("poisoning.rewrite-url", _VARNISH, _POISONED, _NGINX),
    _security("poisoning.method-override", _VARNISH, _POISONED, _NGINX),
    ("security.poisoning.get-body", _ours("security.poisoning.get-body", "GET body")),
    _security("poisoning.oversized-header", _NGINX, "the poison's marker|error was reused", _VARNISH),
    ("security.poisoning.underscore-header", _ours("security.poisoning.underscore-header", _POISONED)),
    ("security.poisoning.malformed-header", (
        Tampered("security.poisoning.malformed-header", "as a malformed header", _NGINX),
        NoNegative(_VARNISH, "Varnish's HTTP/1 parser answers 400 to a header name with whitespace "
                   "before the colon or a character outside the token set before any VCL runs, and "
                   "no parameter relaxes it (nginx refuses the first too, even with "
                   "ignore_invalid_headers off, which lets the second through)"))),
    _security("host.unknown", _NGINX, "expected 421", _VARNISH),
    _security("host.absolute-form", _NGINX, "was served the entry written", ENGINES),
    _security("host.key-collision", _NGINX, "key parts collide", _VARNISH),
    _security("deception.paths", _NGINX, _LEAK + "|but the cache applied rule", _VARNISH),
    _security("cloaking.query", _NGINX, "but the answer", _VARNISH),
    _security("methods.unsafe", _NGINX, "method 'get' answered", _VARNISH),
    _security("fill.variants", _VARNISH, r"stored \d+ objects", _NGINX),
    # origin faults
    ("faults.error.fresh", (Elsewhere(_FAULTS + "test_fresh_check_fails_when_errors_are_stored",
                                      "faults.error.fresh"),)),
    ("faults.error.stale", (Elsewhere(_FAULTS + "test_stale_checks_fail_without_stale_on_error",
                                      "faults.error.stale"),)),
    ("faults.down.stale", (Elsewhere(_FAULTS + "test_stale_checks_fail_without_stale_on_error",
                                     "faults.down.stale"),)),
    ("faults.error.status-ttl.*", (Elsewhere(
        _FAULTS + "test_status_ttl_check_fails_when_an_error_is_kept_longer", "faults.error.status-ttl"),)),
    ("faults.timeout.fresh", (Elsewhere(
        _FAULTS + "test_timeout_check_fails_when_the_engine_waits_too_long", "faults.timeout.fresh"),)),
    ("faults.timeout.stale", _ours("faults.timeout.stale", "expected the stale copy")),
    ("faults.down.fresh", _ours("faults.down.fresh", r"200 bypass .*expected 502|after the origin recovered")),
    ("faults.close-mid-body.fresh", (Tampered("faults.close-mid-body.fresh", "after the origin recovered",
                                              _VARNISH), NoNegative(_NGINX, _STREAMED))),
    ("faults.close-mid-body.stale", (Tampered("faults.close-mid-body.stale", "expected the stale copy",
                                              _VARNISH), NoNegative(_NGINX, _STREAMED))),
    # fleets (the engine is the front tier's; each broken on nginx and on Varnish edges)
    *((check, (Elsewhere(_FLEET + "test_each_fleet_check_fails_on_a_broken_fleet", check),))
      for check in ("fleet.herd", "fleet.shard.once", "fleet.node-loss")),
    ("fleet.purge", (Elsewhere(_FLEET + "test_purge_fails_when_sent_to_the_edges_only", "fleet.purge"),)),
])
# Families proven on one engine only although the other has the behaviour (family -> why):
# the other engine's tampering is not written yet. Entries leave as negatives arrive (a test
# insists). Empty today.
ONE_ENGINE: dict[str, str] = {}
# Families no configuration of either engine can fail: a check that cannot fail is a defect,
# reported to the lead engineer, and listed here so that a new one cannot slip in unnoticed.
# Empty today (security.poisoning.malformed-header left it when it learnt a malformation nginx
# can be configured to pass on).
NEVER_FAILS: set[str] = set()


# --------------------------------------------------------------------------- the meta-tests


def _covered(negatives: tuple[Negative, ...]) -> set[str]:
    return {e for n in negatives for e in n.engines}


def _unsupported(check: Check, engine: str) -> bool:
    return bool(check.feature) and FEATURES[check.feature or ""].on(engine).level == "unsupported"


def test_every_check_family_has_a_negative() -> None:
    found = registry()
    missing = {f: example for f, (example, _) in found.items() if f not in NEGATIVES}
    assert not missing, ("check families without a negative (add a tampering that fails them, "
                         f"or a reference to the test that does, to NEGATIVES): {missing}")
    stale = set(NEGATIVES) - set(found)
    assert not stale, f"NEGATIVES names families the registry no longer derives: {sorted(stale)}"


def test_every_security_check_has_a_negative() -> None:
    """The security suite's own registry (every check any policy can imply, not only those the
    policies here derive): each id has a negative that fails it on at least one engine, and every
    engine without one says why."""
    ids = [entry.id for entry in SUITE]
    missing = [i for i in ids if i not in NEGATIVES]
    assert not missing, f"security checks without a negative (add one to NEGATIVES): {missing}"
    never = [i for i in ids if all(isinstance(n, NoNegative) for n in NEGATIVES[i])]
    assert not never, f"security checks no configuration fails: {never}"
    uncovered = {i: sorted(set(ENGINES) - _covered(NEGATIVES[i])) for i in ids}
    assert not {i: e for i, e in uncovered.items() if e}, f"engines with neither a negative nor a reason: {uncovered}"
    assert len(set(ids)) == len(ids), "the registry repeats an id"


def test_every_engine_with_the_behaviour_is_covered() -> None:
    """Each family is failed on every engine that has its behaviour, or says why not."""
    gaps = {}
    for name, (_, check) in registry().items():
        needed = {e for e in ENGINES if not _unsupported(check, e)}
        left = needed - _covered(NEGATIVES[name])
        if left:
            gaps[name] = sorted(left)
    assert set(gaps) == set(ONE_ENGINE), f"uncovered engines {gaps}; ONE_ENGINE lists {sorted(ONE_ENGINE)}"
    never = {f for f, negatives in NEGATIVES.items() if all(isinstance(n, NoNegative) for n in negatives)}
    assert never == NEVER_FAILS, f"families no configuration fails: {sorted(never)}"


@pytest.mark.parametrize("name", sorted(n for n, negs in NEGATIVES.items()
                                        if any(isinstance(x, Elsewhere) for x in negs)))
def test_negatives_elsewhere_name_real_tests(name: str) -> None:
    for negative in NEGATIVES[name]:
        if not isinstance(negative, Elsewhere):
            continue
        path, _, test = negative.test.partition("::")
        function, _, case = test.partition("[")
        text = (ROOT / path).read_text()
        assert f"def {function}(" in text, f"{negative.test}: no such test"
        assert not case or f'"{case.rstrip("]")}"' in text, f"{negative.test}: no such case"
        assert negative.mentions in text, f"{path} no longer mentions {negative.mentions}"


def test_tampered_negatives_name_their_mistake() -> None:
    derived = {c.id: c for c in derive(negatives_policy())}
    tampered = {n.check: n for negs in NEGATIVES.values() for n in negs if isinstance(n, Tampered)}
    for check, negative in tampered.items():
        assert check in derived, f"{check} is not derived from POLICY"
        assert negative in NEGATIVES[family(check, negatives_policy())]
        mistake = mistake_for(check)
        edited = {path.split("/")[0] for path in mistake.edits()}
        assert set(negative.engines) <= edited, f"{mistake.name}: an engine of {check} has no edit"
    named = {c for m in MISTAKES for c in m.checks}
    assert named == set(tampered), f"mistakes and NEGATIVES disagree: {named ^ set(tampered)}"


def test_every_edit_applies_to_the_compiled_config() -> None:
    """Without engines: each mistake's edits still find their text in today's output."""
    files = {f.path: f.text for f in compile_policy(negatives_policy()).files}
    for mistake in MISTAKES:
        for path, edit in mistake.edits().items():
            assert edit(files[path]) != files[path], f"{mistake.name}: the {path} edit changes nothing"


def test_family_replaces_rule_names_and_status_codes() -> None:
    policy = negatives_policy()
    assert family("rule.me.ttl", policy) == "rule.*.ttl"
    assert family("rule.default", policy) == "rule.*"
    assert family("cache.status_ttl.404", policy) == "cache.status_ttl.*"
    assert family("security.poisoning.get-body", policy) == "security.poisoning.get-body"


# --------------------------------------------------------------------------- on the engines

Results = dict[tuple[str, str], dict[str, Any]]


def run(tmp_path: Path, checks: Iterable[str]) -> Results:
    """``cachewright test`` of POLICY on both engines, only ``checks``, results by (id, engine)."""
    policy = tmp_path / "negatives.yaml"
    policy.write_text(POLICY)
    report = tmp_path / "report.json"
    args = ["test", str(policy), "--no-scenarios", "--json", str(report)]
    code = main([*args, *(a for c in sorted(checks) for a in ("--checks", c))])
    if not report.exists():
        pytest.fail(f"cachewright test exited {code} without a report (did an engine reject the "
                    "tampered config? see the output above)")
    results: list[dict[str, Any]] = json.loads(report.read_text())["results"]
    return {(r["check_id"], r["engine"]): r for r in results}


def explain(results: Results) -> str:
    return "\n".join(f"{c} [{e}] {r['outcome']}: {r['message']}" for (c, e), r in sorted(results.items()))


def _editor(mistakes: Iterable[Mistake], errors: list[str]) -> Callable[[str, str], str]:
    """``tamper``'s edit: each mistake's edit of the file's engine; failures are collected (an
    exception inside the run would only show as an engine that did not start)."""
    def edit(path: str, text: str) -> str:
        for mistake in mistakes:
            one = mistake.edits().get(path)
            try:
                text = one(text) if one else text
            except AssertionError as exc:
                errors.append(f"{mistake.name} ({path}): {exc}")
        return text
    return edit


@pytest.mark.engine
def test_the_tampered_checks_pass_on_the_untouched_config(tmp_path: Path) -> None:
    derived = {c.id: c for c in derive(negatives_policy())}
    checks = [c for m in MISTAKES for c in m.checks]
    results = run(tmp_path, checks)
    for check in checks:
        for engine in ENGINES:
            expected = "unsupported" if _unsupported(derived[check], engine) else "passed"
            assert results[check, engine]["outcome"] == expected, explain(results)


@pytest.mark.engine
@pytest.mark.parametrize("group", GROUPS)
def test_each_mistake_fails_its_checks(group: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mistakes = [m for m in MISTAKES if m.group == group]
    errors: list[str] = []
    changed = tamper(monkeypatch, _editor(mistakes, errors))
    results = run(tmp_path, [c for m in mistakes for c in m.checks])
    assert not errors, errors
    assert {"nginx/nginx.conf", "varnish/default.vcl"} <= set(changed), changed
    tampered = {n.check: n for negs in NEGATIVES.values() for n in negs if isinstance(n, Tampered)}
    for mistake in mistakes:
        for check in mistake.checks:
            negative = tampered[check]
            for engine in negative.engines:
                result = results[check, engine]
                assert result["outcome"] == "failed", f"{mistake.name}: {check} [{engine}]\n{explain(results)}"
                assert re.search(negative.message, result["message"]), \
                    f"{mistake.name}: {check} [{engine}] failed for another reason: {result['message']}"
