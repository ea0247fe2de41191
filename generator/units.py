"""Human units: durations (``10s``, ``1h30m``, ``30d``) and sizes (``64m``, ``1g``)."""

from __future__ import annotations

import re

_DURATION_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
_DURATION_RE = re.compile(r"(?:(\d+)([smhdwy]))+")
_DURATION_PART = re.compile(r"(\d+)([smhdwy])")
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_SIZE_RE = re.compile(r"(\d+)([kmgt]?)")

DURATION_EXAMPLES = "examples: 10s, 5m, 1h30m, 30d"
SIZE_EXAMPLES = "examples: 512k, 64m, 1g"


def parse_duration(text: str) -> int | None:
    """Seconds in ``text`` (``"1h30m"`` → 5400), or None when it is not a duration."""
    if text == "0":
        return 0
    if not _DURATION_RE.fullmatch(text):
        return None
    units = [unit for _, unit in _DURATION_PART.findall(text)]
    if len(set(units)) != len(units):
        return None
    return sum(int(n) * _DURATION_UNITS[u] for n, u in _DURATION_PART.findall(text))


def parse_size(text: str) -> int | None:
    """Bytes in ``text`` (``"64m"`` → 67108864), or None when it is not a size."""
    match = _SIZE_RE.fullmatch(text.lower())
    if not match:
        return None
    return int(match.group(1)) * _SIZE_UNITS[match.group(2)]


def format_duration(seconds: int) -> str:
    """The shortest exact unit form of ``seconds`` (5400 → ``"1h30m"``)."""
    if seconds == 0:
        return "0s"
    parts = []
    for unit, size in sorted(_DURATION_UNITS.items(), key=lambda item: -item[1]):
        if unit in "wy":
            continue
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
