"""Lowering a policy to nginx's render model.

How the shared semantics are made to hold on nginx (details in docs/policy.md):

* First match wins: ``location`` precedence is not first-match, so every request is rewritten at
  server level to ``/.cw/<rule>``, where ``<rule>`` comes from one ``map`` whose keys are all
  regexes (nginx tests those in order, first match wins). The map's source is
  ``<predicate bits>:<method>:<raw path>``: header, cookie, host and path-regex conditions are
  1-character ``map`` variables, so untrusted text never reaches the separators.
* Per-rule TTLs and header handling need per-location directives (``proxy_cache_valid`` and
  ``proxy_ignore_headers`` take no variables): one ``internal`` location per rule.
* Paths are matched raw (``$request_uri``) after a hygiene guard that rejects dot segments and
  encodings of unreserved characters, so raw matching equals decoded matching.
"""

from __future__ import annotations

from dataclasses import dataclass

from .model import SAFE_METHODS, Policy, Rule
from .quote import cookie_regex, extensions_regex, glob_regex, host_regex, literal_regex
from .tls import PROFILES, Profile
from .units import format_duration

QUERY_PASSES = 8
DEFAULT_STATUSES = "200 203 204 300 301 308"
# Statuses ever stored (Varnish's RFC 7231 list plus 308); others only through status_ttl.
CACHEABLE_STATUSES = (200, 203, 204, 300, 301, 302, 307, 308, 404, 410, 414)
X_ACCEL = "X-Accel-Expires X-Accel-Redirect X-Accel-Limit-Rate X-Accel-Buffering X-Accel-Charset"


@dataclass(frozen=True)
class Predicate:
    """A 1-character map variable: ``1`` when ``source`` matches ``regex``."""

    var: str
    source: str
    regex: str
    comment: str


@dataclass(frozen=True)
class CookieValue:
    var: str
    regex: str
    name: str


@dataclass(frozen=True)
class Choice:
    regex: str
    ident: str


@dataclass(frozen=True)
class Location:
    ident: str
    name: str
    marker: str
    cache: bool
    key: str
    valid: tuple[tuple[str, str], ...]
    ignore_headers: str
    strip_cookies: bool
    bypass: str
    no_cache: str
    mode: str
    forward_cookie: str
    keep_cookies: str | None
    hide_headers: tuple[str, ...]


@dataclass(frozen=True)
class Listener:
    address: str
    port: int
    ssl: bool
    http2_in_listen: bool


@dataclass(frozen=True)
class Tls:
    certificate: str
    key: str
    profile: Profile
    http2_directive: bool
    hsts: str
    dhparam: str | None


@dataclass(frozen=True)
class NginxModel:
    name: str
    load_modules: tuple[str, ...]
    cache_size: str
    inactive: str
    servers: tuple[str, ...]
    connect_timeout: str
    read_timeout: str
    host_header: str | None
    methods: tuple[str, ...]
    hosts_regex: str | None
    purge_allow: tuple[str, ...]
    query_ignore: str | None
    query_passes: tuple[int, ...]
    cookie_values: tuple[CookieValue, ...]
    predicates: tuple[Predicate, ...]
    selector: str
    choices: tuple[Choice, ...]
    locations: tuple[Location, ...]
    listeners: tuple[Listener, ...]
    redirect: Listener | None
    tls: Tls | None
    collapse: bool
    use_stale: str
    background_update: bool
    cache_status: bool
    cache_name: str
    storable_statuses: str
    variables_hash_max_size: int


def lower(policy: Policy, version: tuple[int, int, int], modules_dir: str) -> NginxModel:
    """The render model for ``templates/nginx/nginx.conf.j2``."""
    purge = policy.purge is not None and "url" in policy.purge.kinds
    cookies = _cookie_values(policy)
    predicates = _predicates(policy, cookies)
    rules = (*policy.rules, policy.default_rule)
    tags = tag_headers(policy)
    http2_directive = version >= (1, 25, 1)
    return NginxModel(
        name=policy.name,
        load_modules=(f"{modules_dir}/ngx_http_cache_purge_module.so",) if purge else (),
        cache_size=f"{policy.cache.size // (1024 * 1024)}m",
        inactive=format_duration(max(_max_ttl(policy), 600)),
        servers=tuple(f"{s.host}:{s.port}" for s in policy.origin.servers),
        connect_timeout=f"{policy.origin.connect_timeout}s",
        read_timeout=f"{policy.origin.read_timeout}s",
        host_header=policy.origin.host_header,
        methods=SAFE_METHODS + (("PURGE",) if purge else ()),
        hosts_regex=host_regex(policy.listen.hosts) if policy.listen.hosts else None,
        purge_allow=policy.purge.allow if purge and policy.purge else (),
        query_ignore=_ignore_alternation(policy),
        query_passes=tuple(range(1, QUERY_PASSES + 1)),
        cookie_values=tuple(cookies.values()),
        predicates=tuple(predicates.values()),
        selector='"' + "".join(f"${{{p.var}}}" for p in predicates.values()) + ':$cw_m:$cw_path"',
        choices=tuple(Choice(_choice_regex(r, predicates, cookies), r.ident) for r in policy.rules),
        locations=tuple(_location(policy, r, cookies, tags) for r in rules),
        listeners=_listeners(policy, http2_directive),
        redirect=_redirect(policy),
        tls=_tls(policy, http2_directive),
        collapse=policy.cache.collapse_requests,
        use_stale=_use_stale(policy),
        background_update=policy.cache.stale.while_revalidate > 0,
        cache_status=policy.headers.cache_status,
        cache_name=policy.headers.cache_status_name,
        storable_statuses="|".join(str(s) for s in storable_statuses(policy)),
        variables_hash_max_size=_hash_size(len(predicates) + len(cookies) * 2 + len(rules)),
    )


def _hash_size(variables: int) -> int:
    """variables_hash_max_size with room for every generated variable (nginx's default, 1024,
    is too small for large policies and makes nginx warn at start)."""
    size = 1024
    while size < 4 * (variables + 100):
        size *= 2
    return size


def storable_statuses(policy: Policy) -> tuple[int, ...]:
    """Statuses that may be stored: the cacheable ones, and any status_ttl lists."""
    return tuple(sorted(set(CACHEABLE_STATUSES) | {code for code, _ in policy.cache.status_ttl}))


def _max_ttl(policy: Policy) -> int:
    ttls = [r.ttl or 0 for r in policy.rules] + [policy.cache.default_ttl]
    ttls += [ttl for _, ttl in policy.cache.status_ttl]
    stale = policy.cache.stale
    return max(ttls) + max(stale.while_revalidate, stale.if_error)


def _ignore_alternation(policy: Policy) -> str | None:
    ignore = policy.cache.query.ignore
    return "(?:" + "|".join(glob_regex(g) for g in ignore) + ")" if ignore else None


def _cookie_values(policy: Policy) -> dict[str, CookieValue]:
    names = {c.name for r in policy.rules for c in r.match.cookies}
    names |= {c for r in policy.rules for c in r.key.cookies}
    out = {}
    for i, name in enumerate(sorted(names), 1):
        var = f"cw_cookie{i}"
        regex = cookie_regex(name).replace("=([^;]*)", f"=(?<{var}v>[^;]*)")
        out[name] = CookieValue(var, regex, name)
    return out


def _predicates(policy: Policy, cookies: dict[str, CookieValue]) -> dict[tuple[str, str], Predicate]:
    """One predicate per distinct (source, regex) condition, in first-use order."""
    out: dict[tuple[str, str], Predicate] = {}

    def add(source: str, regex: str, comment: str) -> None:
        if (source, regex) not in out:
            out[(source, regex)] = Predicate(f"cw_p{len(out) + 1}", source, regex, comment)

    for rule in policy.rules:
        m = rule.match
        if m.hosts:
            add("$host", host_regex(m.hosts), f"host of rule {rule.name}")
        if m.path_regex is not None:
            add("$cw_path", m.path_regex, f"path_regex of rule {rule.name}")
        for h in m.headers:
            add(header_var(h.name), h.regex or ".", f"header {h.name} of rule {rule.name}")
        for c in m.cookies:
            add(f"${cookies[c.name].var}", c.regex or ".", f"cookie {c.name} of rule {rule.name}")
    return out


def header_var(name: str) -> str:
    return "$http_" + name.lower().replace("-", "_")


def _choice_regex(rule: Rule, predicates: dict[tuple[str, str], Predicate],
                  cookies: dict[str, CookieValue]) -> str:
    m = rule.match
    wanted = set()
    if m.hosts:
        wanted.add(("$host", host_regex(m.hosts)))
    if m.path_regex is not None:
        wanted.add(("$cw_path", m.path_regex))
    wanted |= {(header_var(h.name), h.regex or ".") for h in m.headers}
    wanted |= {(f"${cookies[c.name].var}", c.regex or ".") for c in m.cookies}
    # each wanted predicate's bit, by position (lookaheads keep the regex short however many
    # predicates the policy has)
    positions = sorted(i for i, key in enumerate(predicates) if key in wanted)
    bits = "".join(f"(?=[01]{{{i}}}1)" if i else "(?=1)" for i in positions)
    methods = "(?:" + "|".join(m.methods) + ")" if m.methods else "[A-Z_-]+"
    path = literal_regex(m.path_prefix) if m.path_prefix else ""
    if m.extensions:  # the prefix and the extension may share characters (/logo.png + png)
        path = (f"(?={path})" if path else "") + ".*" + extensions_regex(m.extensions)
    return f"^{bits}[01]*:{methods}:{path}"


def _location(policy: Policy, rule: Rule, cookies: dict[str, CookieValue],
              tags: tuple[str, ...]) -> Location:
    marker = f"rule {rule.name} ({policy.where(f'rules[{rule.index}]')})"
    if rule.name == "default":
        marker = "rule default (requests no rule matches)"
    keyed_auth = "Authorization" in {h.title() for h in rule.key.headers}
    bypass = ["$cw_q_left"] + ([] if keyed_auth else ["$http_authorization"])
    if not (rule.strip_cookies or rule.key.cookies):
        bypass.append("$http_cookie")
    mode = ("O" if rule.origin_headers == "override" else "R") + ("S" if rule.strip_cookies else "K")
    return Location(
        ident=rule.ident,
        name=rule.name,
        marker=marker,
        cache=rule.cache,
        key=_key(policy, rule, cookies),
        valid=_valid(policy, rule),
        ignore_headers=_ignore_headers(rule),
        strip_cookies=rule.strip_cookies,
        bypass=" ".join(bypass),
        no_cache=" ".join([*bypass, "$cw_nostore"]),
        mode=mode if rule.cache else "N",
        forward_cookie=_forward_cookie(rule, cookies),
        keep_cookies=("".join(f"${{{cookies[c].var}_pair}}" for c in rule.key.cookies)
                      if rule.key.cookies else None),
        hide_headers=_hide_headers(tags, rule),
    )


def _hide_headers(tags: tuple[str, ...], rule: Rule) -> tuple[str, ...]:
    """Origin response headers clients never see: Cache-Status is ours, tag headers are consumed
    by the cache (as on Varnish), Set-Cookie is dropped where cookies are stripped."""
    return ("Cache-Status", *tags, *(("Set-Cookie",) if rule.strip_cookies else ()))


def tag_headers(policy: Policy) -> tuple[str, ...]:
    """Every response header a rule takes tags from, sorted."""
    return tuple(sorted({r.tags_from_header for r in policy.rules if r.tags_from_header}))


def _key(policy: Policy, rule: Rule, cookies: dict[str, CookieValue]) -> str:
    """proxy_cache_key: parts separated by a newline (which no request text can contain)."""
    parts = {"scheme": "$scheme://", "host": "$host", "path": "$cw_path", "query": "?$cw_query"}
    key = "".join(parts[p] for p in policy.cache.key)
    for header in rule.key.headers:
        key += f"\\nh:{header.lower()}:{header_var(header)}"
    for cookie in rule.key.cookies:
        key += f"\\nc:{cookie}:${cookies[cookie].var}"
    for header in rule.vary:
        key += f"\\nv:{header.lower()}:{header_var(header)}"
    return key


def _valid(policy: Policy, rule: Rule) -> tuple[tuple[str, str], ...]:
    ttl = rule.ttl if rule.ttl is not None else policy.cache.default_ttl
    valid = [(DEFAULT_STATUSES, format_duration(ttl))] if ttl else []
    valid += [(str(code), format_duration(t)) for code, t in policy.cache.status_ttl if t]
    return tuple(valid)


def _ignore_headers(rule: Rule) -> str:
    parts = ["Cache-Control Expires"] if rule.origin_headers == "override" else []
    if rule.strip_cookies:
        parts.append("Set-Cookie")
    return " ".join([*parts, X_ACCEL])


def _forward_cookie(rule: Rule, cookies: dict[str, CookieValue]) -> str:
    if rule.strip_cookies:
        return '""'
    if rule.key.cookies:
        return f"$cw_keep_{rule.ident}"
    return "$http_cookie"


def _use_stale(policy: Policy) -> str:
    stale = policy.cache.stale
    parts = ["updating"] if stale.while_revalidate else []
    if stale.if_error:
        parts += ["error", "timeout", "http_500", "http_502", "http_503", "http_504"]
    return " ".join(parts) or "off"


def _listeners(policy: Policy, http2_directive: bool) -> tuple[Listener, ...]:
    out = []
    http, https = policy.listen.http, policy.listen.https
    if http and not (https and https.redirect_http):
        out.append(Listener(http.address, http.port, False, False))
    if https:
        out.append(Listener(https.address, https.port, True, https.http2 and not http2_directive))
    return tuple(out)


def _redirect(policy: Policy) -> Listener | None:
    http, https = policy.listen.http, policy.listen.https
    if http and https and https.redirect_http:
        return Listener(http.address, http.port, False, False)
    return None


def _tls(policy: Policy, http2_directive: bool) -> Tls | None:
    https = policy.listen.https
    if https is None:
        return None
    hsts = ""
    if https.hsts:
        hsts = f"max-age={https.hsts.max_age}"
        hsts += "; includeSubDomains" if https.hsts.include_subdomains else ""
        hsts += "; preload" if https.hsts.preload else ""
    profile = PROFILES[https.profile]
    dhe = any(c.startswith("DHE-") for c in profile.ciphers)
    return Tls(https.certificate, https.key, profile, https.http2 and http2_directive, hsts,
               "ffdhe2048.pem" if dhe else None)

