"""Origin offload for ``cachewright compare``: what reaches the origin as stored entries expire.

The sample origin answers a few URLs with a 16 KiB body, an ``ETag``, a ``Last-Modified`` and
``Cache-Control: max-age=1``. Each URL is stored once, then a few connections request them in
turn for a few seconds, so every entry expires about once a second and is refreshed. A cache that
revalidates sends the validators and gets a ``304`` without a body; one that does not fetches the
whole body again. What reached the origin is read from the origin itself (the ground truth, not
the engine's headers): requests and their ``200`` and ``304`` answers from its request log, and the
response body bytes it sent from its own counter (``body_bytes`` of ``GET /counts``: none for a
``304``).

Three configs per engine run the same load: the generated one, the hand-written baseline, and the
generated one with revalidation turned off (``no_revalidation``). The policy cannot say "no
revalidation", so that variant is the generated files edited here (``VARIANT_EDITS`` says how, and
the report repeats it):

- nginx: the ``proxy_cache_revalidate on;`` lines removed (the directive's default is off);
- Varnish: every ``beresp.keep`` set to ``0s``, and the validators Varnish adds to a refresh
  (``If-None-Match``, ``If-Modified-Since``) removed in ``vcl_backend_fetch``. Varnish revalidates
  any stored object it still holds, inside its grace as well as its keep, so ``keep`` alone does
  not turn revalidation off for a policy with stale windows.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Mapping, Sequence
from typing import Final

from cachewright.generator.model import Policy
from cachewright.generator.pipeline import Options, compile_policy
from cachewright.generator.render import OutputFile

from ..checks.base import Ctx
from ..origin import OriginClient, RecordedRequest
from ..runtime.prepare import Placement, generated
from .figures import OffloadResult, OffloadRun, OriginCounts
from .measure import MeasureError, Probe, Target, checked, respecting_probe
from .settings import OffloadSettings

#: the three configs the offload run compares, in the report's order
VARIANTS: Final = ("generated", "baseline", "no_revalidation")
#: the origin's validators (constant: every refresh of an unchanged URL may be a 304)
ETAG: Final = '"cw-offload-v1"'
LAST_MODIFIED: Final = 1_700_000_000
#: how long after the load a refresh the load started may still be on its way to the origin
SETTLE_S: Final = 0.2
#: how the ``no_revalidation`` variant differs from the generated config, per engine
VARIANT_EDITS: Final = {
    "nginx": "the generated nginx.conf without its `proxy_cache_revalidate on;` lines",
    "varnish": "the generated VCL with every `beresp.keep` set to 0s and If-None-Match / "
               "If-Modified-Since removed from the origin request in vcl_backend_fetch (Varnish "
               "also revalidates inside grace, so keep alone would not turn it off)",
}
_REVALIDATE_LINE: Final = re.compile(r"^[ \t]*proxy_cache_revalidate[ \t]+on[ \t]*;[ \t]*\n", re.M)
_KEEP: Final = re.compile(r"(set\s+beresp\.keep\s*=\s*)([^;]+);")
_ZERO: Final = re.compile(r"0+(?:\.0*)?(?:ms|s|m|h|d|w|y)")
_BACKEND_FETCH: Final = re.compile(r"^sub vcl_backend_fetch \{\n", re.M)
_DROP_VALIDATORS: Final = ("    # cachewright compare, no_revalidation variant: no conditional refresh.\n"
                           "    if (!bereq.uncacheable) {\n"
                           "        unset bereq.http.If-None-Match;\n"
                           "        unset bereq.http.If-Modified-Since;\n"
                           "    }\n")


# --------------------------------------------------------------------------- the configs


def revalidates(files: Mapping[str, OutputFile], engine: str) -> bool:
    """Whether an engine's config sends validators on a refresh of an expired entry on its own:
    ``proxy_cache_revalidate on`` in nginx.conf, a ``beresp.keep`` above 0 in the VCL."""
    if engine == "nginx":
        return bool(_REVALIDATE_LINE.search(files["nginx.conf"].text))
    return any(not _ZERO.fullmatch(m[2].strip()) for m in _KEEP.finditer(files["default.vcl"].text))


def generated_revalidates(policy: Policy, engine: str) -> bool:
    """``revalidates`` on the compiler's own files for ``policy``."""
    files = compile_policy(policy, (engine,), Options()).files
    return revalidates({f.path.rsplit("/", 1)[-1]: f for f in files}, engine)


def no_revalidation(policy: Policy, engine: str, place: Placement, options: Options) -> dict[str, OutputFile]:
    """The generated files with revalidation turned off (a ``harness.runtime.prepare.Configs``)."""
    return without_revalidation(generated(policy, engine, place, options), engine)


def without_revalidation(files: Mapping[str, OutputFile], engine: str) -> dict[str, OutputFile]:
    """``files`` with the engine's config edited as ``VARIANT_EDITS`` says."""
    name = "nginx.conf" if engine == "nginx" else "default.vcl"
    edit = _without_revalidate if engine == "nginx" else _without_keep
    return {**files, name: OutputFile(name, edit(files[name].text))}


def _without_revalidate(text: str) -> str:
    return _REVALIDATE_LINE.sub("", text)


def _without_keep(text: str) -> str:
    """Every ``beresp.keep`` 0s, and no validators on a fetch that may be stored."""
    text = _KEEP.sub(r"\g<1>0s;", text)
    text, found = _BACKEND_FETCH.subn(lambda m: m[0] + _DROP_VALIDATORS, text, count=1)
    if not found:
        raise MeasureError("the generated VCL has no `sub vcl_backend_fetch {` line to turn "
                           "revalidation off in (harness/compare/offload.py)")
    return text


# --------------------------------------------------------------------------- the measurement


def offload_probe(ctx: Ctx) -> Probe | None:
    """The URLs' rule: a cacheable one that respects the origin's max-age (so entries expire),
    if its probe carries no cookie (so the baseline caches it too); None otherwise."""
    probe = respecting_probe(ctx)
    if probe is None or probe.request.cookie_header:
        return None
    return checked(ctx, probe, "o1")


def measure_offload(target: Target, probe: Probe, settings: OffloadSettings) -> OffloadRun:
    """The URLs stored once, then ``concurrency`` connections over them for ``duration_s``: what
    the client got, and what reached the origin during the load (from the origin's log)."""
    reqs = [probe.variant(f"o{i}") for i in range(settings.urls)]
    units = {req.unit for req in reqs}
    target.program(probe.origin_pattern(), status=200, cache_control=settings.cache_control,
                   etag=ETAG, last_modified=LAST_MODIFIED, body="filler", body_size=settings.body_size)
    for req in reqs:
        target.ctx.send(req)
    control = target.ctx.control()
    last = control.requests(limit=1)
    since, sent = last[0].seq if last else 0, _body_bytes(control, units)
    result = target.load(reqs, concurrency=settings.concurrency, duration_s=settings.duration_s)
    time.sleep(SETTLE_S)
    seen = [e for e in control.requests(since=since) if probe.tag in e.target]
    return OffloadRun(client_requests=result.requests, client_errors=result.errors,
                      client_statuses=result.to_json()["statuses"], **dataclasses.asdict(origin_figures(seen)),
                      origin_body_bytes=_body_bytes(control, units) - sent)


def _body_bytes(control: OriginClient, units: set[str]) -> int:
    """The response body bytes the origin has sent for ``units``, by its own counter."""
    counted = control.counts().body_bytes
    return sum(counted.get(unit, 0) for unit in units)


def origin_figures(seen: Sequence[RecordedRequest]) -> OriginCounts:
    """Requests the origin logged, its 200 and 304 answers, and the 304s' share."""
    ok = sum(e.status == 200 and e.outcome == "ok" for e in seen)
    not_modified = sum(e.status == 304 for e in seen)
    return OriginCounts(origin_requests=len(seen), origin_200=ok, origin_304=not_modified,
                        origin_other=len(seen) - ok - not_modified,
                        share_304=not_modified / len(seen) if seen else None)


def offload_result(engine: str, rule: str, revalidating: bool,
                   variants: Mapping[str, OffloadRun]) -> OffloadResult:
    """One engine's offload section: each variant's figures, and the origin body bytes the
    generated config and the baseline saved against the generated config without revalidation."""
    saved = {name: saved_bytes(variants[name], variants["no_revalidation"]) for name in ("generated", "baseline")}
    return OffloadResult(rule=rule, generated_revalidates=revalidating, no_revalidation_is=VARIANT_EDITS[engine],
                         variants=dict(variants), saved_bytes={name: pair[0] for name, pair in saved.items()},
                         saved_share={name: pair[1] for name, pair in saved.items()})


def saved_bytes(variant: OffloadRun, reference: OffloadRun) -> tuple[float | None, float | None]:
    """What ``variant``'s origin requests would have cost at ``reference``'s body bytes per origin
    request, less what they cost; and that as a share of the former. Per request, because runs of
    equal length make a few more or fewer refreshes as the expiries fall (None: no reference)."""
    if not reference.origin_requests or variant.origin_requests is None:
        return None, None
    would = variant.origin_requests * (reference.origin_body_bytes or 0) / reference.origin_requests
    saved = would - (variant.origin_body_bytes or 0)
    return saved, saved / would if would else None
