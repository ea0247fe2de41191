"""Turning untrusted policy text into config text: one quoting helper per engine, and the regex
builders both engines share (both use PCRE). Values were validated at load (no control bytes,
ASCII only); these helpers still refuse what they cannot represent exactly, as a last line.
"""

from __future__ import annotations

import re
from functools import lru_cache

from .errors import CachewrightError

_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
_META = set("\\^$.|?*+()[]{}")


class UnquotableValue(CachewrightError):
    """A value that cannot be written so the engine reads exactly it (a bug if it escapes load)."""


def _plain(value: str) -> str:
    if _FORBIDDEN.search(value):
        raise UnquotableValue(f"control characters cannot be written into a config: {value!r}")
    return value


def nginx_str(value: str) -> str:
    """A double-quoted nginx argument read back as exactly ``value`` by nginx's config parser.

    nginx un-escapes ``\\\\``, ``\\"``, ``\\'`` (and ``\\t \\r \\n``) inside quotes, so doubling
    every backslash and escaping quotes round-trips. ``$`` is literal only where the directive
    takes no variables (map keys, regexes); callers put user text only there.
    """
    return '"' + _plain(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def vcl_str(value: str) -> str:
    """A VCL string literal holding exactly ``value``: ``"..."`` if it has no quote, else the
    long form ``{"..."}``. VCL strings have no escapes, so a value containing ``"}`` as well as
    a quote cannot be written and is refused."""
    _plain(value)
    if '"' not in value:
        return f'"{value}"'
    if '"}' not in value and not value.endswith('"'):
        return '{"' + value + '"}'
    raise UnquotableValue(f"cannot be written as a VCL string: {value!r}")


@lru_cache(maxsize=4096)  # rule selection (explain, replay) builds the same few per request
def literal_regex(text: str) -> str:
    """PCRE matching ``text`` literally. ``%XX`` escapes match in either hex case."""
    out = []
    for part in re.split(r"(%[0-9A-Fa-f]{2})", text):
        if re.fullmatch(r"%[0-9A-Fa-f]{2}", part):
            out.append("%" + "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c
                                     for c in part[1:]))
        else:
            out.append("".join("\\" + c if c in _META else c for c in part))
    return "".join(out)


def prefix_regex(prefix: str) -> str:
    """Raw path starts with ``prefix``."""
    return "^" + literal_regex(prefix)


def extensions_regex(extensions: tuple[str, ...]) -> str:
    """Raw path ends in ``.ext`` for one of ``extensions`` (any letter case)."""
    return extension_pattern(extensions) + "$"


def extension_pattern(extensions: tuple[str, ...]) -> str:
    """``.ext`` for one of ``extensions`` (any letter case), unanchored."""
    alternatives = "|".join(literal_regex(e.lower()) for e in extensions)
    return r"\.(?i:" + alternatives + ")"


def host_regex(hosts: tuple[str, ...]) -> str:
    """Lowercased, port-less host is one of ``hosts`` (``*.example.com``: any subdomain)."""
    return "^" + host_pattern(hosts) + "$"


def host_pattern(hosts: tuple[str, ...]) -> str:
    """One of ``hosts``, unanchored; a label never spans a space or a slash (neither occurs in a
    host name), so the pattern can sit between separators in a longer string."""
    parts = []
    for host in hosts:
        if host.startswith("*."):
            parts.append(r"(?:[^./ ]+\.)+" + literal_regex(host[2:]))
        else:
            parts.append(literal_regex(host))
    return "(?:" + "|".join(parts) + ")"


def glob_regex(glob: str) -> str:
    """A query-parameter name glob (``utm_*``) as a regex fragment for one name."""
    return "".join("[^&=]*" if c == "*" else literal_regex(c) for c in glob)


def cookie_regex(name: str) -> str:
    """Cookie header contains cookie ``name``; group 1 is its value."""
    return r"(?:^|;)\s*" + literal_regex(name) + r"=([^;]*)"


def comment_text(value: str, limit: int = 60) -> str:
    """``value`` as text inside a ``#`` line comment (nginx, VCL): one line that cannot end the
    comment. Load refuses control and non-ASCII characters; any that reached here are written
    as escapes (``\\n``, ``\\x7f``), never raw. Longer than ``limit``: cut, ending in ``...``."""
    if not (value.isascii() and value.isprintable()):
        value = "".join(c if " " <= c <= "~" else c.encode("unicode_escape").decode("ascii")
                        for c in value)
    return value if len(value) <= limit else value[:limit - 3] + "..."
