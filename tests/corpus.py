"""A corpus of realistic and adversarial policies, and a runner that proves them on both engines.

Each policy is a small site: ``/``, ``/blog/<slug>``, ``/static/app.<hash>.js``, ``/api/v1/...``,
``/account/``, ``/admin/``, a CDN host, ... written as a stranger would write it from the docs, so
its rules are ordinary; what is adversarial is how they combine: single-path rules (anchored
regexes), unanchored regexes, overlapping prefixes (the narrow one first), host-, header-,
cookie- and method-only rules placed anywhere, ``override`` next to ``respect``, ``vary`` and
extra key parts, tags and purging, status TTLs, stale windows short enough to be waited for,
and TLS now and then. Every policy is valid by construction: one that does not load or compile is
a bug of this generator, counted apart from the harness's verdicts. The site model and its rule
families are in ``tests/corpus_rules.py``; the policy's other sections are drawn here.

A policy is a pure function of ``(seed, index)`` (its own ``random.Random``), so a failure is
reproduced from the two numbers alone::

    python tests/corpus.py --seed 7 --index 3 > p.yaml && cachewright test p.yaml

``tests/test_corpus.py`` runs a rotating sample in CI; ``benchmarks/corpus/run.py`` runs the whole
corpus (``CORPUS_SEED``, ``CORPUS_SIZE`` policies) and writes ``docs/corpus.md``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import secrets
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from corpus_rules import FAMILIES, Doc, Site, catch_all

ROOT = Path(__file__).resolve().parent.parent
#: environment variable that fixes the sample's seed (to reproduce a CI run)
SEED_ENV = "CACHEWRIGHT_CORPUS_SEED"
#: the whole corpus the benchmark runs: policies (CORPUS_SEED, 0 .. CORPUS_SIZE - 1)
CORPUS_SEED = 0
CORPUS_SIZE = 200
#: how a child run starts cachewright: the checkout's harness, as the other benchmarks do
CHECKOUT = (sys.executable, "-m", "cachewright.harness")

#: what a policy can exercise (``CorpusPolicy.traits``), for coverage figures and tests
TRAITS: dict[str, str] = {
    "single-path": "a rule for one path (`^/$`, `^/robots\\.txt$`, a prefix that is a file name)",
    "exact-path": "an exact `path` (`/`, `/robots.txt`)",
    "regex-anchored": "an anchored `path_regex`",
    "regex-unanchored": "an unanchored `path_regex` (`/feed/?$`, `\\.(?:css|js|png)$`)",
    "regex-then-prefix": "an anchored regex before a prefix that covers its paths",
    "overlapping-prefixes": "a narrow prefix before a wider one (`/blog/drafts/`, `/blog/`)",
    "asset-prefix": "assets by `path_prefix: /static/`",
    "extension-rule": "assets by `extensions` alone",
    "prefix-and-extensions": "assets by prefix and extensions",
    "catch-all": "a last rule `path_prefix: /`",
    "host-rule": "a rule matching on `host` (exact or `*.`)",
    "header-rule": "a rule matching on a request header",
    "cookie-rule": "a rule matching on a cookie",
    "method-rule": "a rule matching on methods",
    "cache-false": "a `cache: false` rule",
    "ttl-short": "a TTL of a few seconds (proven by waiting)",
    "rule-override": "a rule with `origin_headers: override`",
    "rule-respect": "a rule with `origin_headers: respect` written out",
    "global-override": "`cache.origin_headers: override`",
    "default-ttl": "`cache.default_ttl`",
    "strip-cookies": "`strip_cookies: true`",
    "vary": "`vary`",
    "key-headers": "`key.headers` (`X-Tenant`, `Authorization`)",
    "key-cookies": "`key.cookies`",
    "key-no-query": "`cache.key` without `query`",
    "key-no-scheme": "`cache.key` without `scheme`",
    "query-ignore": "`cache.query.ignore`",
    "query-sort": "`cache.query.sort` (Varnish only)",
    "stale": "a stale window",
    "stale-short": "stale windows short enough to wait out",
    "status-ttl": "`cache.status_ttl`",
    "status-ttl-5xx": "a 5xx in `cache.status_ttl`",
    "tags": "`tags_from_header`",
    "purge-url": "URL purging",
    "purge-tag": "tag purging (Varnish only)",
    "purge-pattern": "BAN by prefix (Varnish only)",
    "purge-all": "purge of everything (Varnish only)",
    "purge-soft": "soft tag purges (Varnish only)",
    "tls": "an HTTPS listener",
    "tls-redirect": "`redirect_http: true`",
    "tls-only": "HTTPS without plain HTTP",
    "listen-hosts": "`listen.hosts`",
    "listen-wildcard": "`listen.hosts` led by a `*.` name (checks then send `www.`)",
    "get-head-rule": "a cached rule for `methods: [GET, HEAD]`",
    "key-on-matched-header": "`vary` or `key.headers` on the header the rule matches on",
    "key-on-matched-cookie": "`key.cookies` on the cookie the rule matches on",
    "origin-probe": "`origin.probe` (Varnish only)",
    "read-timeout-short": "`origin.read_timeout: 3s` (the timeout faults run)",
    "cache-status-name": "a custom `headers.cache_status_name`",
    "nginx-njs": "`nginx: {njs: true}` (njs: Age on hits, the origin's Connection fields dropped)",
}


# --------------------------------------------------------------------------- the policy


@dataclass(frozen=True)
class CorpusPolicy:
    """One generated policy: where it comes from, the document, and what it exercises."""

    seed: int
    index: int
    doc: Doc
    traits: frozenset[str]

    @property
    def name(self) -> str:
        """A file-name-safe label, ``s<seed>-<index>``."""
        return f"s{self.seed}-{self.index:03d}"

    @property
    def reproduce(self) -> str:
        """The command that prints this policy."""
        return f"python tests/corpus.py --seed {self.seed} --index {self.index}"

    @property
    def text(self) -> str:
        """The policy as YAML, with a comment that says how to regenerate it."""
        head = (f"# corpus policy {self.name}: {self.reproduce}\n"
                f"# traits: {', '.join(sorted(self.traits))}\n")
        return head + yaml.safe_dump(self.doc, sort_keys=False, width=1 << 16, default_flow_style=None)


# --------------------------------------------------------------------------- the policy sections


def generate(seed: int, index: int) -> CorpusPolicy:
    """Policy ``index`` of the corpus drawn with ``seed`` (always the same document)."""
    rng = random.Random(f"cachewright-corpus/{seed}/{index}")
    site = Site(rng, rng.choice(["example.com", "shop.example.org", "blog.example.net",
                                  "news.example.com"]))
    families = rng.sample(FAMILIES, rng.randint(2, 5))
    rules = [r for family in families for r in family(site)]
    if any(r["name"] == "writes" for r in rules):
        # a methods-only rule covers the API's own write rule wherever it stands: keep one
        rules = [r for r in rules if r["name"] != "api-writes"]
    if site.chance(0.15):
        rules += catch_all(site)
    doc: Doc = {"version": 1, "name": f"corpus-{seed % 1000}-{index}", "origin": _origin(site)}
    doc["listen"] = _listen(site)
    doc["cache"] = _cache(site)
    doc["rules"] = rules
    _tags_and_purge(site, doc)
    if site.chance(0.06):
        doc["headers"] = {"cache_status_name": site.pick(["edge", "cdn-cache", "shop.cache"])}
        site.traits.add("cache-status-name")
    if site.chance(0.2):
        doc["nginx"] = {"njs": True}
        site.traits.add("nginx-njs")
    _accept_missing(doc)
    return CorpusPolicy(seed, index, doc, frozenset(site.traits))


def _origin(site: Site) -> Doc:
    origin: Doc = {"url": site.pick(["http://app:8000", "http://127.0.0.1:8080",
                                     ["http://app1:8000", "http://app2:8000"]])}
    if site.chance(0.4):
        origin["host_header"] = site.domain
    if site.chance(0.1):
        origin["probe"] = {"path": "/healthz", "interval": "5s"}
        site.traits.add("origin-probe")
    if site.chance(0.1):
        origin["read_timeout"] = "3s"  # short enough for the timeout fault checks to run
        site.traits.add("read-timeout-short")
    return origin


def _listen(site: Site) -> Doc:
    listen: Doc = {"http": {"port": 80}}
    if site.chance(0.25):
        site.traits.add("tls")
        https: Doc = {"port": 443, "certificate": f"certs/{site.domain}.crt",
                      "key": f"certs/{site.domain}.key",
                      "profile": site.pick(["modern", "intermediate", "intermediate", "old"])}
        if site.chance(0.4):
            https["redirect_http"] = True
            site.traits.add("tls-redirect")
        if site.chance(0.4):
            https["hsts"] = {"max_age": site.pick(["1d", "1y"])}
        if site.chance(0.3):
            https["http2"] = True
        listen["https"] = https
        if site.chance(0.15) and not https.get("redirect_http"):
            del listen["http"]
            site.traits.add("tls-only")
    if site.hosts or site.chance(0.3):
        listen["hosts"] = [site.domain, f"www.{site.domain}", *site.hosts]
        site.traits.add("listen-hosts")
        if site.chance(0.3):
            listen["hosts"] = [f"*.{site.domain}", site.domain, *site.hosts]
            site.traits.add("listen-wildcard")
    return listen


def _cache(site: Site) -> Doc:
    cache: Doc = {"size": site.pick(["64m", "256m", "1g"])}
    key_kind = site.pick(["default"] * 7 + ["no-query"] * 2 + ["no-scheme"])
    if key_kind == "no-query":
        cache["key"] = ["scheme", "host", "path"]
        site.traits.add("key-no-query")
    elif key_kind == "no-scheme":
        cache["key"] = ["host", "path", "query"]
        site.traits.add("key-no-scheme")
    if key_kind != "no-query" and site.chance(0.5):
        ignore = site.rng.sample(["utm_*", "fbclid", "gclid", "_"], site.rng.randint(1, 3))
        cache["query"] = {"ignore": ignore}
        site.traits.add("query-ignore")
        if site.chance(0.1):
            cache["query"]["sort"] = True
            site.traits.add("query-sort")
    if site.chance(0.25):
        cache["default_ttl"] = site.pick(["1m", "10m"])
        site.traits.add("default-ttl")
        if site.chance(0.4):
            cache["origin_headers"] = "override"
            site.traits.add("global-override")
    cache["stale"] = _stale(site)
    if site.chance(0.15):
        cache["collapse_requests"] = False
    if site.chance(0.5):
        cache["status_ttl"] = _status_ttl(site)
    return cache


def _stale(site: Site) -> Doc:
    revalidate = site.pick([0, 0, "2s", "30s", "1m"])
    if_error = site.pick([0, 0, "3s", "10m", "1h"])
    if revalidate or if_error:
        site.traits.add("stale")
    if revalidate in ("2s", 0) and if_error in ("3s", 0) and (revalidate or if_error):
        site.traits.add("stale-short")  # within the window check's wait limit
    return {"while_revalidate": revalidate, "if_error": if_error}


def _status_ttl(site: Site) -> dict[int, str]:
    site.traits.add("status-ttl")
    options = {404: ["10s", "1m"], 410: ["1h"], 301: ["1h"], 500: ["5s"], 503: ["3s"]}
    codes = sorted(site.rng.sample(sorted(options), site.rng.randint(1, 2)))
    if any(code >= 500 for code in codes):
        site.traits.add("status-ttl-5xx")
    return {code: str(site.pick(options[code])) for code in codes}


def _tags_and_purge(site: Site, doc: Doc) -> None:
    cacheable = [r for r in doc["rules"] if r.get("cache", True)]
    count = site.rng.randint(1, 2) if site.chance(0.4) else 0
    tagged = site.rng.sample(cacheable, min(len(cacheable), count))
    header = site.pick(["Surrogate-Key", "Cache-Tag"])
    for rule in tagged:
        rule["tags_from_header"] = header
        site.traits.add("tags")
    if not site.chance(0.55):
        return
    allow = site.pick([["127.0.0.1/32"], ["127.0.0.1/32", "10.0.0.0/8"], ["127.0.0.0/8"],
                       ["::1/128", "127.0.0.1/32"]])
    kinds = ["url"]
    if tagged and site.chance(0.7):
        kinds.append("tag")
    if site.chance(0.2):
        kinds += site.rng.sample(["pattern", "all"], site.rng.randint(1, 2))
    purge: Doc = {"allow": allow, "kinds": kinds}
    if "tag" in kinds and site.chance(0.3):
        purge["soft"] = True
        site.traits.add("purge-soft")
    doc["purge"] = purge
    site.traits |= {f"purge-{k}" for k in kinds}


def _accept_missing(doc: Doc) -> None:
    """What nginx lacks and the policy uses (the docs' capability table), accepted explicitly."""
    used = []
    if doc["origin"].get("probe"):
        used.append("origin.probe")
    if doc["cache"].get("query", {}).get("sort"):
        used.append("query.sort")
    purge = doc.get("purge") or {}
    used += [f"purge.{k}" for k in purge.get("kinds", []) if k != "url"]
    if purge.get("soft"):
        used.append("purge.soft")
    if used:
        doc["accept_missing"] = {"nginx": used}


def corpus(seed: int, count: int, start: int = 0) -> list[CorpusPolicy]:
    """Policies ``start .. start + count - 1`` of ``seed``."""
    return [generate(seed, i) for i in range(start, start + count)]


@functools.cache
def sample_seed() -> int:
    """The seed of this run: ``$CACHEWRIGHT_CORPUS_SEED`` when set, else a fresh random one
    (drawn once per process: the session header and the tests show the same one)."""
    fixed = os.environ.get(SEED_ENV, "").strip()
    return int(fixed) if fixed else secrets.randbelow(10**6)


# --------------------------------------------------------------------------- running it


@dataclass(frozen=True)
class Outcome:
    """What one ``cachewright test`` run of a corpus policy gave."""

    policy: CorpusPolicy
    seconds: float
    #: the policy did not load or compile (a generator bug): the message
    load_error: str | None = None
    #: the exit code, or None when the run was not made
    code: int | None = None
    results: tuple[dict[str, Any], ...] = ()
    #: output of a run that wrote no JSON report (the harness itself failed)
    error: str = ""

    @property
    def failures(self) -> list[dict[str, Any]]:
        """Failed checks (``check_id``, ``engine``, ``message``, ``details``)."""
        return [r for r in self.results if r["outcome"] == "failed"]

    def summary(self) -> str:
        """One line per failure, each naming the policy and how to regenerate it."""
        where = f"{self.policy.name} ({self.policy.reproduce})"
        if self.load_error:
            return f"{where}: generator bug, the policy does not load: {self.load_error}"
        if self.error and self.code is None:
            return f"{where}: {self.error}"
        if self.error:
            return f"{where}: cachewright test exited {self.code} without a report: {self.error}"
        return "\n".join(f"{where}: FAIL {r['check_id']} [{r['engine']}]: {r['message']}"
                         for r in self.failures)


def load_problem(policy: CorpusPolicy, path: Path) -> str | None:
    """None when the policy loads and compiles for both engines, else the compiler's message."""
    from cachewright.generator.errors import CachewrightError
    from cachewright.generator.load import loads
    from cachewright.generator.pipeline import compile_policy

    try:
        compile_policy(loads(policy.text, str(path)))
    except CachewrightError as exc:
        return exc.render() if hasattr(exc, "render") else str(exc)
    return None


def run(policy: CorpusPolicy, workdir: Path, args: Sequence[str] = (), *,
        in_process: bool = False, command: Sequence[str] = CHECKOUT) -> Outcome:
    """``cachewright test`` on both engines for ``policy`` (written into ``workdir``), with extra
    ``args`` (e.g. ``--checks rule.x``). ``in_process`` runs the CLI's ``main`` in this process,
    so a test's monkeypatching (``tampering.tamper``) applies; otherwise ``command`` runs as a
    child (by default the checkout's ``python -m cachewright.harness``)."""
    path = workdir / f"{policy.name}.yaml"
    path.write_text(policy.text, encoding="utf-8")
    started = time.monotonic()
    try:
        problem = load_problem(policy, path)
    except Exception as exc:  # a compiler crash is that policy's finding, not ours
        return Outcome(policy, time.monotonic() - started, error=f"the compiler crashed: {exc!r}")
    if problem:
        return Outcome(policy, time.monotonic() - started, load_error=problem)
    report = workdir / f"{policy.name}.json"
    report.unlink(missing_ok=True)
    argv = ["test", str(path), "--json", str(report), *args]
    code, error = _in_process(argv) if in_process else _child([*command, "-q", *argv])
    seconds = time.monotonic() - started
    if not report.exists():
        return Outcome(policy, seconds, code=code, error=error[-2000:] or "no report")
    results = tuple(json.loads(report.read_text(encoding="utf-8"))["results"])
    return Outcome(policy, seconds, code=code, results=results)


def _in_process(argv: list[str]) -> tuple[int, str]:
    from cachewright.harness.cli import main

    return main(argv), ""


def _child(argv: list[str]) -> tuple[int, str]:
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    return done.returncode, done.stdout[-1500:] + done.stderr[-1500:]


def main(argv: Sequence[str] | None = None) -> int:
    """Print one corpus policy as YAML (to reproduce a failure)."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--seed", type=int, default=CORPUS_SEED)
    parser.add_argument("--index", type=int, default=0)
    args = parser.parse_args(argv)
    sys.stdout.write(generate(args.seed, args.index).text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
