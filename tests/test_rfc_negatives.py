"""Every check of the rfc family can fail: a configuration broken on purpose (a *tampering*, as
tests/test_negatives.py does for the other families) fails it on an engine where the untouched
configuration passes it.

The tamperings are plausible mistakes, several to a run of the family on both engines (a run
costs about 30 s; the mistakes of one run fail different checks):

* **store everything** for a minute, whatever the origin says (Cache-Control, Expires, Vary
  and the bypasses ignored): fails every check that expects a response not to be reused;
* **store nothing**: fails every check that expects a hit;
* **no validators** sent to the origin: fails revalidation;
* **stale on error for an hour** and **never stale**: fail the stale checks both ways;
* **invalidate everything on POST** (Varnish): fails the checks that an invalidation must not
  reach further than its URL; **invalidate nothing** fails the invalidation checks;
* **no Age, a fresh Date** on hits (Varnish), **HEAD stored as GET**, **If-Modified-Since
  matched exactly** and **nginx's own Date on hits** (nginx); the options a policy opts into
  (`tests/data/rfc-opt-in.yaml`: the client's `no-cache` honoured, njs on nginx) are run
  untouched and ignored.

A check that no engine passes today has nothing to negate yet (its negative is the failing
untouched run); the test lists those and requires the others to be covered. ``NO_NEGATIVE``
names checks that an engine passes and that no configuration of it can fail, with why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from tampering import tamper

from cachewright.generator.load import load
from cachewright.generator.pipeline import compile_policy
from cachewright.harness.checks import derive, select
from cachewright.harness.cli import main

ROOT = Path(__file__).resolve().parent.parent
POLICY = ROOT / "tests" / "data" / "rfc-respect.yaml"
ENGINES = ("nginx", "varnish")
Edit = Callable[[str], str]


def insert_after(anchor: str, text: str) -> Edit:
    """``text`` after every ``anchor`` (which must be there)."""
    def edit(config: str) -> str:
        assert anchor in config, f"{anchor!r} not found: the template changed, update this tampering"
        return config.replace(anchor, anchor + text)
    return edit


def sub(pattern: str, new: str) -> Edit:
    """Every match of ``pattern`` (there must be one) replaced by ``new``."""
    def edit(config: str) -> str:
        config, n = re.subn(pattern, new, config)
        assert n, f"{pattern!r} not found: the template changed, update this tampering"
        return config
    return edit


def chain(*edits: Edit) -> Edit:
    def edit(config: str) -> str:
        for one in edits:
            config = one(config)
        return config
    return edit


@dataclass(frozen=True)
class Tampering:
    """A mistake as an edit of each engine's config (None: that engine's config is left as is)."""

    name: str
    nginx: Edit | None
    varnish: Edit | None

    def edit(self, path: str, text: str) -> str:
        one = {"nginx/nginx.conf": self.nginx, "varnish/default.vcl": self.varnish}.get(path)
        return one(text) if one else text


_LOCATION = "proxy_cache cw;\n"
_BACKEND_RESPONSE = "sub vcl_backend_response {\n"
_NO_BYPASS = sub(r"\n\s*proxy_(?:no_cache|cache_bypass) [^;]*;", "")
_USE_STALE = r"proxy_cache_use_stale [^;]*;"
_NO_VALIDATORS = (insert_after('proxy_set_header Connection "";\n', '    proxy_set_header If-None-Match "";\n'
                               '    proxy_set_header If-Modified-Since "";\n'),
                  insert_after("sub vcl_backend_fetch {\n", "    unset bereq.http.If-None-Match;\n"
                               "    unset bereq.http.If-Modified-Since;\n"))
_STALE_HOUR = (sub(_USE_STALE, "proxy_cache_use_stale error timeout updating http_500 http_502 "
                   "http_503 http_504;"),
               insert_after("sub vcl_hit {\n", "    if (obj.ttl + 3600s > 0s) {\n"
                            "        return (deliver);\n    }\n"))
# Each run carries several mistakes whose checks do not overlap (a run of the family costs about
# 30 s: fewer runs keep CI short); a check is covered when any run fails it.
TAMPERINGS = (
    Tampering("store everything for a minute",
              chain(_NO_BYPASS, insert_after(_LOCATION, "            proxy_cache_valid any 60s;\n"
                                             "            proxy_ignore_headers Cache-Control "
                                             "Expires Vary Set-Cookie;\n")),
              insert_after(_BACKEND_RESPONSE, "    if (!bereq.uncacheable) {\n"
                           "        unset beresp.http.Vary;\n        set beresp.ttl = 60s;\n"
                           "        set beresp.grace = 0s;\n        return (deliver);\n    }\n")),
    Tampering("store nothing",
              sub(r"proxy_no_cache ", "proxy_no_cache 1 "),
              insert_after(_BACKEND_RESPONSE, "    set beresp.uncacheable = true;\n"
                           "    set beresp.ttl = 0s;\n    return (deliver);\n")),
    Tampering("no validators sent to the origin; stale on error for an hour; unsafe requests "
              "invalidate nothing (Varnish; nginx never does)",
              chain(_NO_VALIDATORS[0], _STALE_HOUR[0]),
              chain(_NO_VALIDATORS[1], _STALE_HOUR[1], sub(r"beresp\.status < 400\) \{(?=\n\s*call cw_invalidate;)",
                                                           "beresp.status < 100) {"))),
    Tampering("never stale, invalidate everything on POST, hits without Age and with a fresh Date "
              "(Varnish); HEAD stored as GET, If-Modified-Since matched exactly, nginx's own Date "
              "on hits (nginx)",
              chain(insert_after(_LOCATION, "            proxy_cache_convert_head off;\n"),
                    sub(r"\n\s*if_modified_since before;", ""),
                    sub(r"\n\s*proxy_pass_header Date;", "")),
              chain(insert_after("sub vcl_hit {\n", "    if (obj.ttl <= 0s) {\n        return (pass);\n"
                                 "    }\n"),
                    insert_after("sub vcl_recv {\n", '    if (req.method == "POST") {\n'
                                 '        std.ban("obj.status != 0");\n    }\n'),
                    insert_after("sub vcl_deliver {\n", "    unset resp.http.Age;\n"
                                 "    set resp.http.Date = now;\n"))),
)
#: checks an engine passes that no configuration of that engine can fail (check -> why)
NO_NEGATIVE = {
    "rfc.connection.request": "varnishd removes the fields a client lists in Connection while "
                              "parsing the request, before any VCL runs; nginx cannot (a limit)",
}

Results = dict[tuple[str, str], dict[str, Any]]


def rfc_ids() -> list[str]:
    return [c.id for c in select(derive(load(POLICY), conformance=True), ["rfc"])]


def run(tmp_path: Path, name: str) -> Results:
    """The family on both engines, results by (check, engine)."""
    out = tmp_path / f"{re.sub(r'[^a-z]+', '-', name)}.json"
    main(["test", str(POLICY), "--checks", "rfc", "--no-scenarios", "--json", str(out)])
    if not out.exists():
        pytest.fail(f"{name}: no report (did an engine reject the tampered config?)")
    return {(r["check_id"], r["engine"]): r for r in json.loads(out.read_text())["results"]}


def test_every_tampering_applies_to_the_compiled_config() -> None:
    """Without engines: each edit still finds its text in today's output."""
    files = {f.path: f.text for f in compile_policy(load(POLICY)).files}
    for one in TAMPERINGS:
        for path, edit in (("nginx/nginx.conf", one.nginx), ("varnish/default.vcl", one.varnish)):
            if edit is not None:
                assert edit(files[path]) != files[path], f"{one.name}: the {path} edit changes nothing"


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Results]]:
    """The untouched run, then one run per tampering."""
    tmp = tmp_path_factory.mktemp("rfc-negatives")
    found = {"untouched": run(tmp, "untouched")}
    for one in TAMPERINGS:
        with pytest.MonkeyPatch.context() as patch:
            tamper(patch, one.edit)
            found[one.name] = run(tmp, one.name)
    yield found


def _passing(results: Results, check: str) -> set[str]:
    return {e for e in ENGINES if results[check, e]["outcome"] == "passed"}


@pytest.mark.engine
def test_every_rfc_check_fails_on_a_tampered_config(runs: dict[str, Results]) -> None:
    untouched = runs["untouched"]
    uncovered, nothing_yet = {}, []
    for check in rfc_ids():
        passing = _passing(untouched, check)
        if not passing:
            nothing_yet.append(check)
            continue
        failed_by = [name for name, results in runs.items() if name != "untouched"
                     for e in passing if results[check, e]["outcome"] == "failed"]
        if not failed_by and check not in NO_NEGATIVE:
            uncovered[check] = sorted(passing)
    print(f"no engine passes these yet (their negative is today's run): {nothing_yet}")
    assert not uncovered, f"checks no tampering fails (on the engines that pass them): {uncovered}"
    assert set(NO_NEGATIVE) <= set(rfc_ids())



OPT_IN = ROOT / "tests" / "data" / "rfc-opt-in.yaml"
#: the checks a rule gets with relax: [request-no-cache] (harness/checks/rfc/shared.py RELAXED_BY)
CLIENT_DIRECTIVES = ("rfc.no-cache.request", "rfc.no-cache.pragma", "rfc.request.max-age-0")
#: the checks nginx passes with nginx: {njs: true} (engine limits without it)
NJS = ("rfc.age.on-hit", "rfc.connection.response")
OPTIONS_IGNORED = Tampering(
    "the client's no-cache, max-age=0 and Pragma ignored; no njs header filter (nginx)",
    chain(sub(r"(proxy_cache_bypass [^;]*) \$cw_req_nocache", r"\1"),
          sub(r"\n\s*js_header_filter cw\.respond;", "")),
    insert_after("sub vcl_recv {\n", "    unset req.http.Cache-Control;\n    unset req.http.Pragma;\n"))


@pytest.mark.engine
def test_what_a_policy_opts_into_fails_when_the_config_ignores_it(tmp_path: Path) -> None:
    """relax: [request-no-cache] derives three more checks, nginx: {njs: true} makes two nginx
    limits checks; each passes and fails on a config that ignores the option."""
    opted = {c.id: c for c in select(derive(load(OPT_IN), conformance=True), ["rfc"])}
    assert set(CLIENT_DIRECTIVES) | set(NJS) <= set(opted)
    assert not set(CLIENT_DIRECTIVES) & set(rfc_ids())  # the default keeps the deviation

    def outcomes(name: str) -> dict[tuple[str, str], str]:
        out = tmp_path / f"{name}.json"
        main(["test", str(OPT_IN), *(f"--checks={c}" for c in (*CLIENT_DIRECTIVES, *NJS)),
              "--no-scenarios", "--json", str(out)])
        return {(r["check_id"], r["engine"]): r["outcome"] for r in json.loads(out.read_text())["results"]}

    every = {(c, e) for c in (*CLIENT_DIRECTIVES, *NJS) for e in ENGINES}
    assert outcomes("untouched") == dict.fromkeys(every, "passed")
    with pytest.MonkeyPatch.context() as patch:
        tamper(patch, OPTIONS_IGNORED.edit)
        broken = outcomes("tampered")
    assert broken == {key: "passed" if key in {(c, "varnish") for c in NJS} else "failed" for key in every}
