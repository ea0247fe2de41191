"""The harness's sample origin app: a programmable HTTP/1.1 server, and a client of its control port.

It listens on two ports. The **data port** (``data``) is what the cache under test proxies to;
it answers any path and any method as the rules programmed for it say (``rules``,
``behaviours``). The **control port** (``control``) is never shown to the cache: tests and
checks use it to program responses and to read what the origin actually received (``state``).
``wire`` speaks HTTP/1.1 for both; ``server`` runs the two listeners, ``runner`` runs a server
in-process or until a signal, ``__main__`` is ``python -m cachewright.harness.origin``.

Everything but ``client`` is stdlib only: the docker runtime ships those modules
(``shipping.server_files``) into a container that has nothing but python3, so no server module
imports the client or anything outside this package. ``client`` (``OriginClient``, which needs
``requests``) is handed on here lazily, so that starting the server never imports it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from .rules import Rule, RuleError, parse_rule, parse_rules
from .runner import OriginServer
from .server import Origin, OriginConfig
from .shipping import server_files
from .state import MARKERS, unit_of

if TYPE_CHECKING:
    from .client import (
        Counts,
        Echo,
        OriginClient,
        OriginError,
        RecordedRequest,
        RuleSpec,
        SeenRequest,
        parse_echo,
    )

_CLIENT_NAMES = frozenset({"Counts", "Echo", "OriginClient", "OriginError", "RecordedRequest",
                           "RuleSpec", "SeenRequest", "parse_echo"})

__all__ = [
    "MARKERS",
    "Counts",
    "Echo",
    "Origin",
    "OriginClient",
    "OriginConfig",
    "OriginError",
    "OriginServer",
    "RecordedRequest",
    "Rule",
    "RuleError",
    "RuleSpec",
    "SeenRequest",
    "parse_echo",
    "parse_rule",
    "parse_rules",
    "server_files",
    "unit_of",
]


def __getattr__(name: str) -> object:
    """The client's names, imported on first use (the server runs where ``requests`` is not)."""
    if name in _CLIENT_NAMES:
        return getattr(importlib.import_module(".client", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
