"""Cache-Control directives (RFC 9111 §5.2), Vary (§4.1), Authorization (§3.5) and targeted
fields (RFC 9213)."""

from __future__ import annotations

from collections.abc import Iterator

from cachewright.generator.model import Rule

from ..base import Ctx
from ..rules import probe
from .shared import (
    EXPIRED,
    NO_STALE,
    R9110,
    R9111,
    R9213,
    REQUEST_DIRECTIVES,
    TARGETED,
    VARY_EMPTY,
    Spec,
    fresh,
    make_spec,
    program,
    reuse_spec,
    said,
    send,
)
from .stale import check_no_stale_on_error


def directive_specs() -> Iterator[Spec]:
    yield reuse_spec("no-cache.response", f"{R9111}5.2.2.4", "a response with no-cache is not reused "
                     "without validation", fresh("no-cache, max-age=60", etag="v1"), False)
    yield reuse_spec("no-cache.request", f"{R9111}5.2.1.4", "a request with no-cache is not answered "
                     "from the cache without validation", fresh(), False, REQUEST_DIRECTIVES,
                     second={"Cache-Control": "no-cache"})
    yield reuse_spec("no-cache.pragma", f"{R9111}5.4", "Pragma: no-cache without Cache-Control acts "
                     "as no-cache", fresh(), False, REQUEST_DIRECTIVES, second={"Pragma": "no-cache"})
    yield reuse_spec("request.max-age-0", f"{R9111}5.2.1.1", "a request with max-age=0 is not "
                     "answered with a stored response older than 0s", fresh(), False,
                     REQUEST_DIRECTIVES, second={"Cache-Control": "max-age=0"}, wait=1.1)
    yield reuse_spec("no-store.response", f"{R9111}5.2.2.5", "a response with no-store is not stored",
                     fresh("no-store, max-age=60"), False)
    yield reuse_spec("no-store.case", f"{R9111}5.2", "No-Store is no-store (case-insensitive)",
                     fresh("max-age=60, No-Store"), False)
    yield reuse_spec("no-store.with-public", f"{R9111}5.2.2.5", "public does not undo no-store",
                     fresh("public, no-store, max-age=60"), False)
    yield reuse_spec("no-store.request", f"{R9111}5.2.1.5", "the response to a request with no-store "
                     "is not stored", fresh(), False, first={"Cache-Control": "no-store"})
    yield reuse_spec("private.response", f"{R9111}5.2.2.7", "a private response is not stored by a "
                     "shared cache", fresh("private, max-age=60"), False)
    yield reuse_spec("private.with-s-maxage", f"{R9111}5.2.2.7", "private wins over s-maxage",
                     fresh("private, s-maxage=60"), False)
    yield make_spec("private.field", f"{R9111}5.2.2.7", "private=\"X-Cw-Secret\": a shared cache "
                    "does not store that field", check_private_field)
    yield make_spec("must-revalidate.no-stale", f"{R9111}5.2.2.2", "must-revalidate: an expired "
                    "response is not served stale when the origin fails", check_no_stale_on_error,
                    NO_STALE, "max-age=1, must-revalidate")
    yield make_spec("proxy-revalidate.no-stale", f"{R9111}5.2.2.8", "proxy-revalidate: a shared "
                    "cache does not serve the expired response when the origin fails",
                    check_no_stale_on_error, NO_STALE, "max-age=1, proxy-revalidate")
    yield make_spec("s-maxage.no-stale", f"{R9111}5.2.2.10", "s-maxage implies proxy-revalidate: "
                    "the expired response is not served when the origin fails",
                    check_no_stale_on_error, NO_STALE, "s-maxage=1")


def check_private_field(ctx: Ctx, rule: Rule) -> None:
    """A response naming a field in private= may be stored, but never with that field."""
    req = probe(ctx, rule)
    program(ctx, req, fresh('private="X-Cw-Secret", max-age=60', headers={"X-Cw-Secret": "s1"}))
    ctx.send_stored(req)
    second = send(ctx, req)
    stored = ctx.count(req.unit) == 1
    ctx.expect(not stored or second.header("X-Cw-Secret") is None, "a hit carries the private "
               f"field X-Cw-Secret: {second.header('X-Cw-Secret')} ({said(second)})")


def vary_specs() -> Iterator[Spec]:
    one = fresh(vary="X-Cw-Vary")
    two = fresh(vary="X-Cw-Vary, X-Cw-Other")
    yield reuse_spec("vary.one.match", f"{R9111}4.1", "Vary: X-Cw-Vary with the same value is reused",
                     one, True, first={"X-Cw-Vary": "a"}, second={"X-Cw-Vary": "a"})
    yield reuse_spec("vary.one.differ", f"{R9111}4.1", "Vary: X-Cw-Vary with another value is not "
                     "reused", one, False, first={"X-Cw-Vary": "a"}, second={"X-Cw-Vary": "b"})
    yield reuse_spec("vary.one.absent", f"{R9111}4.1", "Vary: X-Cw-Vary with the field absent from "
                     "the second request is not reused", one, False, first={"X-Cw-Vary": "a"})
    yield reuse_spec("vary.one.both-absent", f"{R9111}4.1", "Vary: X-Cw-Vary absent from both "
                     "requests is reused", one, True)
    yield reuse_spec("vary.one.absent-vs-empty", f"{R9111}4.1", "an empty X-Cw-Vary does not match an "
                     "absent one", one, False, VARY_EMPTY, first={"X-Cw-Vary": ""})
    yield reuse_spec("vary.name-case", f"{R9111}4.1", "Vary names are case-insensitive: vary: "
                     "x-cw-vary still tells values apart", fresh(vary="x-cw-vary"), False,
                     first={"X-Cw-Vary": "a"}, second={"X-Cw-Vary": "b"})
    yield reuse_spec("vary.several.match", f"{R9111}4.1", "Vary on two fields with both the same is "
                     "reused", two, True, first={"X-Cw-Vary": "a", "X-Cw-Other": "1"},
                     second={"X-Cw-Vary": "a", "X-Cw-Other": "1"})
    yield reuse_spec("vary.several.second-differs", f"{R9111}4.1", "Vary on two fields with the "
                     "second differing is not reused", two, False,
                     first={"X-Cw-Vary": "a", "X-Cw-Other": "1"},
                     second={"X-Cw-Vary": "a", "X-Cw-Other": "2"})
    yield reuse_spec("vary.star", f"{R9111}4.1", "Vary: * always fails to match: not reused",
                     fresh(vary="*"), False)
    yield reuse_spec("vary.star-in-list", f"{R9111}4.1", "Vary: X-Cw-Vary, * fails to match: not "
                     "reused", fresh(vary="X-Cw-Vary, *"), False, first={"X-Cw-Vary": "a"},
                     second={"X-Cw-Vary": "a"})
    yield reuse_spec("vary.empty-field", f"{R9110}12.5.5", "an empty Vary names no field: reused",
                     fresh(headers={"Vary": ""}), True)


def authorization_specs() -> Iterator[Spec]:
    """The answer is reused for a request without Authorization: cachewright's configs never
    answer a request with Authorization from the cache (the authorization-lookup deviation,
    which RFC 9111 3.5 allows to be stricter than it)."""
    mine: dict[str, str] = {"Authorization": "Bearer cw-one"}
    other: dict[str, str] = {}
    yield reuse_spec("auth.not-shared", f"{R9111}3.5", "a response to a request with Authorization "
                     "and only max-age is not reused for another request", fresh(), False,
                     first=mine)
    yield reuse_spec("auth.public", f"{R9111}3.5", "public lets a response to Authorization be "
                     "reused", fresh("public, max-age=60"), True, first=mine, second=other)
    yield reuse_spec("auth.s-maxage", f"{R9111}3.5", "s-maxage lets a response to Authorization be "
                     "reused", fresh("s-maxage=60"), True, first=mine, second=other)
    yield reuse_spec("auth.must-revalidate", f"{R9111}3.5", "must-revalidate lets a response to "
                     "Authorization be reused while fresh", fresh("must-revalidate, max-age=60"),
                     True, first=mine, second=other)
    yield reuse_spec("auth.proxy-revalidate", f"{R9111}3.5", "proxy-revalidate is not among the "
                     "directives that allow sharing: not reused", fresh("proxy-revalidate, max-age=60"),
                     False, first=mine, second=other)


def targeted_specs() -> Iterator[Spec]:
    """CDN-Cache-Control (RFC 9213)."""
    yield reuse_spec("targeted.over-cache-control", f"{R9213}2.2", "CDN-Cache-Control: max-age=60 "
                     "is used, and Cache-Control: no-store ignored",
                     fresh("no-store", headers={"CDN-Cache-Control": "max-age=60"}), True, TARGETED)
    yield reuse_spec("targeted.no-store", f"{R9213}2.2", "CDN-Cache-Control: no-store keeps a "
                     "max-age=60 response out", fresh(headers={"CDN-Cache-Control": "no-store"}),
                     False, TARGETED)
    yield reuse_spec("targeted.shorter", f"{R9213}2.2", "CDN-Cache-Control: max-age=1 ends freshness "
                     "before Cache-Control: max-age=3600",
                     fresh("max-age=3600", headers={"CDN-Cache-Control": "max-age=1"}), False,
                     TARGETED, wait=EXPIRED)
    yield reuse_spec("targeted.invalid-ignored", f"{R9213}2.1", "a CDN-Cache-Control that does not "
                     "parse is ignored: Cache-Control: no-store applies",
                     fresh("no-store", headers={"CDN-Cache-Control": "max-age=60, %%%"}), False)
