"""Freshness (RFC 9111 §4.2, §5.2, §5.3) and which statuses may be stored (RFC 9111 §3,
§4.2.2)."""

from __future__ import annotations

from collections.abc import Iterator

from cachewright.generator.model import Policy

from .messages import check_interim, check_partial_not_full
from .shared import (
    AGE_FRESHNESS,
    EXPIRED,
    FRESHNESS_DATES,
    HEURISTIC,
    INTERIM,
    PARTIAL,
    R9111,
    Spec,
    fresh,
    http_date,
    lm_answer,
    make_spec,
    reuse_spec,
)


def freshness_specs() -> Iterator[Spec]:
    """max-age, s-maxage, Expires, Age and the heuristic lifetime."""
    yield from _max_age()
    yield from _expires()
    yield from _age()


def _max_age() -> Iterator[Spec]:
    yield reuse_spec("freshness.max-age.fresh", f"{R9111}5.2.2.1", "a response with max-age=60 is "
                     "reused while fresh", fresh(), True)
    yield reuse_spec("freshness.max-age.expired", f"{R9111}4.2", "a response with max-age=1 is not "
                     "reused once it has expired", fresh("max-age=1"), False, wait=EXPIRED)
    yield reuse_spec("freshness.max-age.zero", f"{R9111}5.2.2.1", "max-age=0 is stale at once: not "
                     "reused without validation", fresh("max-age=0"), False)
    yield reuse_spec("freshness.max-age.case", f"{R9111}5.2", "directive names are case-insensitive: "
                     "MAX-AGE=60 is reused", fresh("MAX-AGE=60"), True)
    yield reuse_spec("freshness.max-age.duplicate", f"{R9111}4.2.1", "with max-age=1 and max-age=3600 "
                     "the first is used (or the response is stale): not reused after 2s",
                     fresh("max-age=1, max-age=3600"), False, wait=EXPIRED)
    yield reuse_spec("freshness.s-maxage.over-max-age", f"{R9111}4.2.1", "a shared cache uses "
                     "s-maxage=60 over max-age=1", fresh("max-age=1, s-maxage=60"), True,
                     wait=EXPIRED)
    yield reuse_spec("freshness.s-maxage.short", f"{R9111}4.2.1", "s-maxage=1 ends freshness even "
                     "with max-age=60", fresh("max-age=60, s-maxage=1"), False, wait=EXPIRED)
    yield reuse_spec("freshness.s-maxage.over-expires", f"{R9111}5.2.2.10", "s-maxage=60 overrides "
                     "an Expires in the past", lambda: fresh("s-maxage=60", expires=http_date(-3600)),
                     True)
    yield reuse_spec("freshness.s-maxage.zero", f"{R9111}5.2.2.10", "s-maxage=0 is stale at once "
                     "even with max-age=60", fresh("max-age=60, s-maxage=0"), False)
    yield reuse_spec("freshness.max-age.over-expires", f"{R9111}5.3", "max-age=60 makes a recipient "
                     "ignore an Expires in the past", lambda: fresh(expires=http_date(-3600)), True)
    yield reuse_spec("freshness.max-age.under-expires", f"{R9111}5.3", "max-age=1 ends freshness "
                     "even with Expires an hour ahead",
                     lambda: fresh("max-age=1", expires=http_date(3600)), False, wait=EXPIRED)


def _expires() -> Iterator[Spec]:
    yield reuse_spec("freshness.expires.fresh", f"{R9111}5.3", "Expires a minute ahead is reused",
                     lambda: {"status": 200, "expires": http_date(60)}, True)
    yield reuse_spec("freshness.expires.expired", f"{R9111}4.2.1", "Expires 1s ahead is not reused "
                     "3s later", lambda: {"status": 200, "expires": http_date(1)}, False,
                     wait=EXPIRED + 1)
    yield reuse_spec("freshness.expires.past", f"{R9111}5.3", "Expires in the past is stale: not "
                     "reused", lambda: {"status": 200, "expires": http_date(-3600)}, False)
    yield reuse_spec("freshness.expires.zero", f"{R9111}5.3", "Expires: 0 (an invalid date) is in the "
                     "past: not reused", {"status": 200, "expires": "0"}, False)
    yield reuse_spec("freshness.expires.invalid", f"{R9111}5.3", "an Expires that is not a date is in "
                     "the past: not reused", {"status": 200, "expires": "next tuesday"}, False)
    yield reuse_spec("freshness.expires.before-date", f"{R9111}4.2.1", "Expires earlier than Date "
                     "gives a negative lifetime: not reused, though Expires is ahead of the cache's "
                     "clock", lambda: {"status": 200, "expires": http_date(1800),
                                       "headers": {"Date": http_date(3600)}}, False,
                     FRESHNESS_DATES)


def _age() -> Iterator[Spec]:
    yield reuse_spec("freshness.age.counted", f"{R9111}4.2.3", "the origin's Age counts: Age 58 with "
                     "max-age=60 is stale 3s later", fresh(headers={"Age": "58"}), False, AGE_FRESHNESS,
                     wait=EXPIRED + 1)
    yield reuse_spec("freshness.age.exceeds", f"{R9111}4.2.3", "Age 120 with max-age=60 arrives "
                     "stale: not reused", fresh(headers={"Age": "120"}), False, AGE_FRESHNESS)
    yield reuse_spec("freshness.age.apparent", f"{R9111}4.2.3", "a Date an hour old makes max-age=60 "
                     "stale on arrival (apparent age)",
                     lambda: fresh(headers={"Date": http_date(-3600)}), False, AGE_FRESHNESS)
    yield reuse_spec("freshness.age.invalid", f"{R9111}5.1", "an Age that is not a non-negative "
                     "integer (1.5) is ignored: max-age=60 is reused", fresh(headers={"Age": "1.5"}),
                     True)
    yield reuse_spec("freshness.age.list", f"{R9111}5.1", "of a list-based Age (5, 100) the first "
                     "member counts: max-age=60 is reused", fresh(headers={"Age": "5, 100"}), True)
    yield reuse_spec("freshness.heuristic.200", f"{R9111}4.2.2", "a 200 with Last-Modified ten days "
                     "ago and no explicit lifetime is reused (heuristic freshness)", lm_answer(), True,
                     HEURISTIC)


def _heuristic_statuses(policy: Policy) -> Iterator[Spec]:
    kept = dict(policy.cache.status_ttl)
    for code in (301, 404, 410, 501):
        yield reuse_spec(f"status.heuristic.{code}", f"{R9111}4.2.2", f"{code} is heuristically "
                         "cacheable: with Last-Modified and no lifetime it is reused", lm_answer(code), True,
                         HEURISTIC)
    if 302 not in kept:
        yield reuse_spec("status.heuristic.302-not", f"{R9111}4.2.2", "302 is not heuristically "
                         "cacheable: with only Last-Modified it is not reused", lm_answer(302), False)


def status_specs(policy: Policy) -> Iterator[Spec]:
    for code in (203, 302, 303, 307, 400, 403, 405, 500, 502, 503):
        yield reuse_spec(f"status.explicit.{code}", f"{R9111}3", f"a final {code} with explicit "
                         "freshness (max-age=60) is stored and reused", fresh(status=code), True)
    yield from _heuristic_statuses(policy)
    yield make_spec("status.interim", f"{R9111}3", "a 103 before the final 200 is not stored; the "
                    "final response is", check_interim, INTERIM)
    yield reuse_spec("status.must-understand", f"{R9111}5.2.2.3", "must-understand on a status the "
                     "cache does not know (299) keeps it out, with no-store",
                     fresh("must-understand, no-store, max-age=60", status=299), False)
    yield make_spec("status.206-not-full", f"{R9111}3.3", "a 206 to a full request is passed on as "
                    "206 and never used as the full response", check_partial_not_full, PARTIAL)
