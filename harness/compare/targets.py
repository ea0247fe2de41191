"""How ``compare`` judges the cached-hit throughput ratio against its target.

One small module so that the report (``harness.compare.run``) and its renderers
(``harness.compare.sections``) decide alike without the renderers importing the measurements.

The ratio is the median of the rounds' ratios, and it comes with a confidence interval for that
median. On a shared machine a single round moves by about 10 %, so a median just under (or just
over) the target says little by itself: the interval decides.

- ``met``: the whole interval is at or above the target;
- ``missed``: the whole interval is below it (its upper end under the target);
- ``inconclusive``: the interval spans the target; more rounds narrow it;
- without an interval (fewer than 5 rounds), the median alone decides ``met`` or ``missed``.
"""

from __future__ import annotations

from decimal import ROUND_FLOOR, Context, Decimal
from typing import Final, Literal

#: the generated config's cached-hit req/s over the hand-written baseline's, at least
THROUGHPUT_TARGET: Final = 0.95

Status = Literal["met", "missed", "inconclusive"]
_WIDE: Final = Context(prec=400)  # room for any float's digits: 1e308 quantized to 0.001


def throughput_status(ratio: float, low: float | None = None, high: float | None = None,
                      target: float = THROUGHPUT_TARGET) -> Status:
    """``ratio`` (a median) against ``target``, given its interval ``low``..``high`` if any."""
    if low is None or high is None:
        return "met" if ratio >= target else "missed"
    if low >= target:
        return "met"
    return "missed" if high < target else "inconclusive"


def ratio_text(value: float) -> str:
    """A ratio to three places, rounded down: neither 0.949 nor 0.9496 may read as a target of
    0.95 met."""
    return str(Decimal(repr(value)).quantize(Decimal("0.001"), rounding=ROUND_FLOOR, context=_WIDE))
