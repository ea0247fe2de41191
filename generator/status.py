"""Response statuses: which may be stored, and which a rule's TTL covers.

One home for these facts: nginx's ``proxy_cache_valid`` lines and ``$cw_status`` map and
Varnish's ``vcl_backend_response`` must agree on them, and ``explain`` quotes them.
"""

from __future__ import annotations

from .model import Policy

#: the statuses a rule's TTL covers (a status listed in status_ttl takes its own instead)
DEFAULT_STATUSES = "200 203 204 300 301 308"
#: statuses ever stored (Varnish's RFC 7231 list plus 308); others only through status_ttl
CACHEABLE_STATUSES = (200, 203, 204, 300, 301, 302, 307, 308, 404, 410, 414)
#: statuses that may be stored with a heuristic lifetime (RFC 9110 15.1), less 206
HEURISTIC_STATUSES = (200, 203, 204, 300, 301, 308, 404, 405, 410, 414, 501)


def storable_statuses(policy: Policy) -> tuple[int, ...]:
    """Statuses that may be stored: the cacheable ones, and any status_ttl lists."""
    return tuple(sorted(set(CACHEABLE_STATUSES) | {code for code, _ in policy.cache.status_ttl}))
