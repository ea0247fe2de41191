"""Request headers that override what the origin believes about a request, as one list.

Frameworks read these for the request's host, port, scheme, path or method when they trust a
proxy in front of them. A client's copy must never reach the origin: the answer would depend
on a header that is not in the cache key, and a stored answer built from it would be served to
everyone (cache poisoning). Both engines remove every one of them before the origin, except
where the rule keys on it (then each value has its own entry); the cache sets the ones it
vouches for (X-Forwarded-For, X-Forwarded-Proto, X-Real-IP) itself.

Where each comes from (who reads it):

* ``X-Forwarded-Host``, ``X-Forwarded-Port``, ``X-Forwarded-Prefix``: Symfony, Laravel,
  Django (``USE_X_FORWARDED_HOST`` / ``_PORT``), Werkzeug's ProxyFix, Spring, Traefik.
* ``X-Forwarded-Server``: set by Apache's mod_proxy, read as the host by some apps.
* ``X-Forwarded-Scheme``, ``X-Forwarded-Ssl``, ``X-Url-Scheme``, ``Front-End-Https``,
  ``X-Forwarded-Protocol``: Rack / Rails and others, for the scheme.
* ``X-Host``, ``X-Original-Host``, ``X-HTTP-Host-Override``: host overrides (Azure front
  ends, Zend/Laminas, some PHP apps).
* ``X-Original-URL``, ``X-Rewrite-URL``: IIS / ASP.NET and Symfony, for the path.
* ``X-HTTP-Method-Override``, ``X-HTTP-Method``, ``X-Method-Override``: the method.
* ``Forwarded`` (RFC 7239): ``host=`` and ``proto=``.
"""

from __future__ import annotations

from .model import Rule

OVERRIDE_HEADERS = (
    "X-Forwarded-Host", "X-Forwarded-Server", "X-Forwarded-Port", "X-Forwarded-Prefix",
    "X-Forwarded-Scheme", "X-Forwarded-Ssl", "X-Forwarded-Protocol", "X-Url-Scheme",
    "Front-End-Https", "X-Host", "X-Original-Host", "X-HTTP-Host-Override", "X-Original-URL",
    "X-Rewrite-URL", "X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "Forwarded",
)


def stripped(rule: Rule | None = None) -> tuple[str, ...]:
    """The override headers removed before the origin for ``rule`` (all of them when None):
    every one the rule does not key on."""
    if rule is None or not rule.key.headers:
        return OVERRIDE_HEADERS  # the common case, asked for each rule of a large policy
    keyed = {h.lower() for h in rule.key.headers}
    return tuple(h for h in OVERRIDE_HEADERS if h.lower() not in keyed)
