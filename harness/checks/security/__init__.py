"""The security suite: each check names the failure mode it guards and proves, on the real
engine, that the generated configuration does not have it.

Families (each check is tagged "security" and its family):

* ``private``   — one client's credentialed response, cookie or uncacheable answer never reaches
  another client;
* ``poisoning`` — unkeyed inputs (forwarding/override headers, a body on GET, oversized or
  malformed headers) neither reach the origin nor change what the next client gets;
* ``host``      — unknown hosts are refused, absolute-form targets cannot write another host's
  entry, and key parts cannot be shifted into one another;
* ``deception`` — path tricks never make a personalised page cacheable for anonymous users;
* ``cloaking``  — two requests that share a key send the origin the same target;
* ``methods``   — unsafe methods reach the origin uncached, odd methods are refused;
* ``fill``      — variants in ignored parameters or unkeyed headers store one object.

The ground truth is the origin's request log: a response "carries a secret" when the origin
request that produced it (found by its response id) carried the secret.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial

from cachewright.generator.model import Policy, Rule

from ..base import Check, Ctx
from .deception import check_deception, deception_pair, trick_paths
from .host import check_absolute_form, check_key_collision, check_unknown_hosts, collidable
from .methods import check_methods
from .poisoning import POISONS, check_poison
from .private import (
    check_authorization_isolated,
    check_directives,
    check_session_cookie_isolated,
    check_set_cookie_isolated,
)
from .shared import cacheable_rules
from .variants import FILL_VARIANTS, check_cloaking, check_fill

#: whether ``policy`` implies a check, given its cacheable rules (in policy order)
Applies = Callable[[Policy, list[Rule]], bool]


def _any_rule(policy: Policy, rules: list[Rule]) -> bool:
    """With no cacheable rule nothing is stored to leak, poison or fill."""
    return bool(rules)


@dataclass(frozen=True)
class Entry:
    """One check of the suite: its id (after ``security.``), family, description and run, and
    when a policy implies it."""

    ident: str
    family: str
    description: str
    run: Callable[[Ctx], None]
    applies: Applies = _any_rule

    @property
    def id(self) -> str:
        """The check's id."""
        return f"security.{self.ident}"

    def check(self) -> Check:
        """The check itself."""
        return Check(self.id, self.description, self.run, ("security", self.family))


def _poisons() -> tuple[Entry, ...]:
    return tuple(Entry(f"poisoning.{p.name}", "poisoning", f"no cache poisoning: {p.guards}",
                       partial(check_poison, p)) for p in POISONS)


#: the suite, in run order: every check any policy can imply (a meta-test holds each to a
#: negative, a configuration that fails it)
SUITE: tuple[Entry, ...] = (
    Entry("private.authorization", "private", "a response to a request with Authorization "
          "is never served to another client", check_authorization_isolated),
    Entry("private.session-cookie", "private", "a response made for a session cookie is "
          "never served to an anonymous client", check_session_cookie_isolated),
    Entry("private.set-cookie", "private", "one client's Set-Cookie is never handed to "
          "another", check_set_cookie_isolated),
    Entry("private.directives", "private", "private/no-store (and no-cache/max-age=0 "
          "when respecting) answers are not reused", check_directives),
    *_poisons(),
    Entry("host.unknown", "host", "unknown hosts are refused (421), by Host or by an "
          "absolute-form target", check_unknown_hosts,
          lambda policy, rules: bool(rules and policy.listen.hosts)),
    Entry("host.absolute-form", "host", "an absolute-form target cannot write another "
          "host's entry", check_absolute_form,
          lambda policy, rules: bool(rules) and "host" in policy.cache.key and not rules[0].match.hosts),
    Entry("host.key-collision", "host", "key parts cannot be shifted into one another",
          check_key_collision, lambda policy, rules: bool(rules) and collidable(policy)),
    Entry("deception.paths", "deception", "path tricks never make a personalised page "
          "cacheable for anonymous users", check_deception,
          lambda policy, rules: deception_pair(policy) is not None),
    Entry("cloaking.query", "cloaking", "requests sharing a key send the origin the "
          "same target (no parameter cloaking)", check_cloaking,
          lambda policy, rules: bool(rules and policy.cache.query.ignore)),
    Entry("methods.unsafe", "methods", "PUT/PATCH/DELETE/OPTIONS reach the origin uncached; "
          "odd methods are refused", check_methods),
    Entry("fill.variants", "fill", f"{FILL_VARIANTS} variants in unkeyed inputs store one "
          "object", check_fill),
)


def security_checks(policy: Policy) -> Iterator[Check]:
    """The security suite for ``policy``: every family, leaving out what the policy cannot have
    (with no cacheable rule nothing is stored to leak, poison or fill; a key-collision needs
    two schemes or keyed parts; a deception needs an uncached and a cacheable rule to combine)."""
    rules = cacheable_rules(policy, 16)
    return (entry.check() for entry in SUITE if entry.applies(policy, rules))


__all__ = ["POISONS", "SUITE", "Entry", "deception_pair", "security_checks", "trick_paths"]
