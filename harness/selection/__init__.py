"""Requests and the rules they select, computed in pure Python with the engines' semantics.

``request``: the ``Request`` the harness sends and ``select_rule`` (first match, as both engines
choose); ``probes``: requests built to select a given rule (what every check sends); ``regexgen``:
example strings for a regex, under the probes; ``explain`` and ``explain_text``: what the compiled
configurations do with one request (``cachewright explain``).
"""

from .probes import (
    distinct_values,
    isolate,
    isolated,
    other_probe,
    overlap_probe,
    probe_for,
    tag_forms,
    tagged_path,
)
from .regexgen import example
from .request import (
    REFUSED_PATHS,
    TAG_PARAMS,
    Pair,
    Request,
    engine_host,
    engine_method,
    match_holds,
    matches,
    path_holds,
    select_rule,
    unmarked,
)

__all__ = [
    "REFUSED_PATHS", "TAG_PARAMS", "Pair", "Request", "distinct_values", "engine_host",
    "engine_method", "example", "isolate", "isolated", "match_holds", "matches", "other_probe",
    "overlap_probe", "path_holds", "probe_for", "select_rule", "tag_forms", "tagged_path",
    "unmarked",
]
