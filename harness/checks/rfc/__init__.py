"""The ``rfc`` family: a policy that respects origin headers must make each engine a correct shared
HTTP cache (RFC 9111, with RFC 9110's conditional and range requests, RFC 5861's stale
directives and RFC 9213's targeted fields).

Each check cites the section it was written from at the start of its description
(``RFC 9111 §4.2.1: ...``); the conformance report groups results by that citation. A check of a
behaviour some engine cannot provide names its capability (``http.<name>``, also one of its
tags) so that the engine reports it as a documented limit, not a failure.

The checks exercise one cacheable rule that respects origin headers and whose probes get cache
entries of their own; the origin's answer is what each check programs. They count what the
origin received per probe (the ground truth of "was it reused") and prove storage by the
engine's own record before asking for a hit. Lifetimes are one second and waits a few.

One module per area (``freshness``, ``validation``, ``directives``, ``stale``, ``messages``,
``invalidation``), each with its checks and the specs that cite them; ``shared`` holds what they
share.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from functools import partial

from cachewright.generator.capabilities import FEATURES
from cachewright.generator.model import Policy, Rule

from ..base import Check, Ctx
from ..defaults import cacheable_rule
from ..rules import isolated_rule
from .directives import authorization_specs, directive_specs, targeted_specs, vary_specs
from .freshness import freshness_specs, status_specs
from .invalidation import invalidation_specs
from .messages import connection_specs, message_specs
from .shared import RELAXED_BY, TAG, Spec, section_of
from .stale import stale_specs
from .validation import conditional_specs, validation_specs


def specs(policy: Policy) -> list[Spec]:
    """Every check of the family, by area."""
    return [*freshness_specs(), *status_specs(policy), *validation_specs(), *conditional_specs(),
            *directive_specs(), *vary_specs(), *authorization_specs(), *stale_specs(),
            *message_specs(), *invalidation_specs(), *targeted_specs(), *connection_specs()]


def rfc_rule(policy: Policy) -> Rule | None:
    """The rule the family exercises: a cacheable one that respects origin headers and whose
    probes get entries of their own; None when the policy has none."""
    rule = cacheable_rule(policy, respect=True)
    return rule if rule is not None and isolated_rule(policy, rule) else None


def rfc_checks(policy: Policy) -> Iterator[Check]:
    """The family's checks for ``policy`` (none without a rule to exercise)."""
    rule = rfc_rule(policy)
    if rule is None:
        return
    for spec in specs(policy):
        if spec.feature in RELAXED_BY and RELAXED_BY[spec.feature] not in rule.relax:
            continue  # a named deviation of cachewright's (docs/policy.md), unless relaxed
        # a capability the policy does not use cannot limit the check (http.no_stale_directives
        # is used only where the policy serves stale): it runs on every engine
        feature = spec.feature if spec.feature and FEATURES[spec.feature].used(policy) else None
        tags = (TAG, *((feature,) if feature else ()))
        yield Check(f"rfc.{spec.id}", f"{spec.section}: {spec.says}",
                    partial(_run, spec.run, rule), tags, feature)


def _run(run: Callable[[Ctx, Rule], None], rule: Rule, ctx: Ctx) -> None:
    run(ctx, rule)


__all__ = ["Spec", "rfc_checks", "rfc_rule", "section_of", "specs"]
