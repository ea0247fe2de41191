"""Lowering a policy to nginx's render model.

How the shared semantics are made to hold on nginx (details in docs/policy.md):

* One ``map`` dispatches every request (``$cw_target``): its source is
  ``[<predicate bits> ]<method> <Content-Length><Transfer-Encoding> <host> <raw target>`` (no
  field before the target can hold a space), and its keys are all regexes, which nginx tests in
  order, first match wins. One regex per rule (then one for the default rule) accepts a request
  that passes every guard -- allowed method, no body on GET/HEAD, a listed host, a clean path --
  and meets the rule's conditions, capturing ``$cw_path`` and ``$cw_rawquery`` on the way; the
  value names the rule's location. Requests no rule regex accepts are classified by the guard
  regexes after them (400, 501, 421). Header, cookie, host and path-regex conditions are
  1-character ``map`` variables (the bits), so untrusted text never reaches the separators.
  One map and one regex for an ordinary hit: this is the cached-hit path ``compare`` measures.
* ``location /`` hands the request to the named location ``@<target>`` (``error_page 418 =
  @$cw_target; return 418;``): no URI rewrite, so a rule location whose query needs no
  normalising proxies the original request target as is (``proxy_pass`` without variables, key
  on the raw query); the ``@<rule>q`` twin proxies the normalised target.
* Per-rule TTLs and header handling need per-location directives (``proxy_cache_valid`` and
  ``proxy_ignore_headers`` take no variables): named locations per rule.
* Paths are matched raw (``$request_uri``) after a hygiene guard that rejects dot segments and
  encodings of unreserved characters, so raw matching equals decoded matching.
"""

from __future__ import annotations

from dataclasses import dataclass

from .hygiene import stripped
from .model import SAFE_METHODS, Policy, Rule
from .quote import (
    cookie_regex,
    extension_pattern,
    extensions_regex,
    glob_regex,
    host_pattern,
    host_regex,
    literal_regex,
)
from .tls import PROFILES, Profile
from .units import format_duration

QUERY_PASSES = 8
#: proxy_cache_lock_timeout: no request waits on the lock longer than this beyond its own fetch
LOCK_TIMEOUT_MS = 75
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
class Target:
    """One entry of the dispatch map: a regex over ``NginxModel.dispatch_key`` and its value."""

    regex: str
    value: str
    comment: str
    #: the rule whose location the value names ("" for PURGE and refusals)
    rule: str = ""


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
    # the same for the twin that proxies the request target unchanged (no ignored parameter)
    plain_key: str
    plain_bypass: str
    plain_no_cache: str
    #: its keys in maps over $cw_target: the location's names ("default" escaped, a map keyword)
    map_keys: tuple[str, ...]
    mode: str
    forward_cookie: str
    keep_cookies: str | None
    hide_headers: tuple[str, ...]
    #: client headers removed before the origin (generator/hygiene.py): all but those it keys on
    strip_headers: tuple[str, ...]
    #: its responses end in njs (cw.respond): Age on a stored answer (RFC 9111 5.1), no field the
    #: origin listed in Connection (RFC 9110 7.6.1)
    respond: bool = False


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
class UpstreamTls:
    """``proxy_ssl_*`` for an https origin: one name for SNI and verification (the upstream
    block's name, nginx's default for both, is not the origin's)."""

    name: str
    protocols: str
    verify: bool
    trusted: str
    verify_depth: int


@dataclass(frozen=True)
class NginxModel:
    name: str
    load_modules: tuple[str, ...]
    cache_size: str
    inactive: str
    servers: tuple[str, ...]
    #: what proxy_pass names: ``http://cw_origin`` or ``https://cw_origin``
    upstream: str
    upstream_tls: UpstreamTls | None
    connect_timeout: str
    read_timeout: str
    host_header: str | None
    methods: tuple[str, ...]
    #: where a request no dispatch regex accepts goes (only a host outside listen.hosts is left)
    dispatch_default: str
    purge_allow: tuple[str, ...]
    query_ignore: str | None
    query_passes: tuple[int, ...]
    cookie_values: tuple[CookieValue, ...]
    predicates: tuple[Predicate, ...]
    dispatch_key: str
    dispatch: tuple[Target, ...]
    raw_path: bool
    selector: str
    choices: tuple[Choice, ...]
    locations: tuple[Location, ...]
    listeners: tuple[Listener, ...]
    redirect: Listener | None
    tls: Tls | None
    collapse: bool
    lock_timeout: str
    use_stale: str
    background_update: bool
    revalidate: bool
    cache_status: bool
    cache_name: str
    storable_statuses: str
    variables_hash_max_size: int
    strip_headers: tuple[str, ...]
    #: some rule relaxes request-no-cache: $cw_req_nocache is defined
    request_no_cache: bool
    #: the njs module of the locations that respond through it (nginx/cachewright.js)
    njs_script: str | None


#: the njs module beside nginx.conf (js_import resolves it against the configuration's folder)
NJS_SCRIPT = "cachewright.js"


def lower(policy: Policy, version: tuple[int, int, int], modules_dir: str) -> NginxModel:
    """The render model for ``templates/nginx/nginx.conf.j2``."""
    purge = policy.purge is not None and "url" in policy.purge.kinds
    cookies = _cookie_values(policy)
    predicates = _predicates(policy, cookies)
    rules = (*policy.rules, policy.default_rule)
    tags = tag_headers(policy)
    http2_directive = version >= (1, 25, 1)
    locations = tuple(_location(policy, r, cookies, tags) for r in rules)
    njs = any(loc.respond for loc in locations)
    modules = (*(("ngx_http_cache_purge_module.so",) if purge else ()),
               *(("ngx_http_js_module.so",) if njs else ()))
    return NginxModel(
        name=policy.name,
        load_modules=tuple(f"{modules_dir}/{module}" for module in modules),
        cache_size=f"{policy.cache.size // (1024 * 1024)}m",
        inactive=format_duration(max(_max_ttl(policy), 600)),
        servers=tuple(f"{s.host}:{s.port}" for s in policy.origin.servers),
        upstream=f"{policy.origin.scheme}://cw_origin",
        upstream_tls=_upstream_tls(policy),
        connect_timeout=f"{policy.origin.connect_timeout}s",
        read_timeout=f"{policy.origin.read_timeout}s",
        host_header=policy.origin.host_header,
        methods=SAFE_METHODS + (("PURGE",) if purge else ()),
        dispatch_default="guard-421" if policy.listen.hosts else "guard-400",
        purge_allow=policy.purge.allow if purge and policy.purge else (),
        query_ignore=_ignore_alternation(policy),
        query_passes=tuple(range(1, QUERY_PASSES + 1)),
        cookie_values=tuple(cookies.values()),
        predicates=tuple(predicates.values()),
        dispatch_key=_dispatch_key(predicates),
        dispatch=_dispatch(policy, predicates, cookies, purge),
        raw_path=any(p.source == "$cw_rawpath" for p in predicates.values()),
        selector='"' + "".join(f"${{{p.var}}}" for p in predicates.values()) + ':GET:$cw_path"',
        choices=tuple(Choice(_choice_regex(r, predicates, cookies), r.ident) for r in policy.rules),
        locations=locations,
        listeners=_listeners(policy, http2_directive),
        redirect=_redirect(policy),
        tls=_tls(policy, http2_directive),
        collapse=policy.cache.collapse_requests,
        lock_timeout=f"{LOCK_TIMEOUT_MS}ms",
        use_stale=_use_stale(policy),
        background_update=_background_update(policy),
        revalidate=policy.cache.keep > 0,
        cache_status=policy.headers.cache_status,
        cache_name=policy.headers.cache_status_name,
        storable_statuses="|".join(str(s) for s in storable_statuses(policy)),
        variables_hash_max_size=_hash_size(len(predicates) + len(cookies) * 2 + len(rules)),
        strip_headers=stripped(),
        request_no_cache=any("request-no-cache" in r.relax for r in rules),
        njs_script=NJS_SCRIPT if njs else None,
    )


def _upstream_tls(policy: Policy) -> UpstreamTls | None:
    tls = policy.origin.tls
    if tls is None:
        return None
    return UpstreamTls(policy.origin.tls_name, " ".join(tls.protocols), tls.verify, tls.trusted,
                       tls.verify_depth)


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
    """How long an entry may be needed after it was last used: its TTL, stale windows and the
    revalidation window (nginx removes entries not accessed for ``inactive``)."""
    ttls = [r.ttl or 0 for r in policy.rules] + [policy.cache.default_ttl]
    ttls += [ttl for _, ttl in policy.cache.status_ttl]
    stale = policy.cache.stale
    return max(ttls) + max(stale.while_revalidate, stale.if_error) + policy.cache.keep


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
            add("$cw_rawpath", m.path_regex, f"path_regex of rule {rule.name}")
        for h in m.headers:
            add(header_var(h.name), h.regex or ".", f"header {h.name} of rule {rule.name}")
        for c in m.cookies:
            add(f"${cookies[c.name].var}", c.regex or ".", f"cookie {c.name} of rule {rule.name}")
    return out


def header_var(name: str) -> str:
    return "$http_" + name.lower().replace("-", "_")


def _bits(rule: Rule, predicates: dict[tuple[str, str], Predicate],
          cookies: dict[str, CookieValue]) -> str:
    """Lookaheads requiring the bits of the rule's predicates to be 1."""
    m = rule.match
    wanted = set()
    if m.hosts:
        wanted.add(("$host", host_regex(m.hosts)))
    if m.path_regex is not None:
        wanted.add(("$cw_rawpath", m.path_regex))
    wanted |= {(header_var(h.name), h.regex or ".") for h in m.headers}
    wanted |= {(f"${cookies[c.name].var}", c.regex or ".") for c in m.cookies}
    # each wanted predicate's bit, by position (lookaheads keep the regex short however many
    # predicates the policy has)
    positions = sorted(i for i, key in enumerate(predicates) if key in wanted)
    return "".join(f"(?=[01]{{{i}}}1)" if i else "(?=1)" for i in positions)


def _choice_regex(rule: Rule, predicates: dict[tuple[str, str], Predicate],
                  cookies: dict[str, CookieValue]) -> str:
    """The rule's regex over ``NginxModel.selector`` (``<bits>:GET:<raw path>``): selects the rule
    a PURGE purges, the one a GET of its target would use."""
    m = rule.match
    bits = _bits(rule, predicates, cookies)
    methods = "(?:" + "|".join(m.methods) + ")" if m.methods else "[A-Z_-]+"
    path = literal_regex(m.path_prefix) if m.path_prefix else ""
    if m.path is not None:
        path = (f"(?={path})" if path else "") + literal_regex(m.path) + "$"
    if m.extensions:  # the prefix and the extension may share characters (/logo.png + png)
        path = (f"(?={path})" if path else "") + ".*" + extensions_regex(m.extensions)
    return f"^{bits}[01]*:{methods}:{path}"


# Path hygiene, in the dispatch regexes. A dot segment ends at '/', at the query or at the end.
DOT_SEGMENT = r"\.\.?(?:/|\?|$)"
# encoded . / \ NUL, and encoded unreserved characters
BAD_HEX = r"(?i:2e|2f|5c|00|3[0-9]|4[1-9a-f]|5[0-9a]|6[1-9a-f]|7[0-9a]|2d|5f|7e)"
# A raw path holding none of them, read in one pass without backtracking: runs of ordinary
# characters, a '/' that starts no dot segment, a '%' that encodes nothing refused. A backslash
# (\x5c) stops it, so the target cannot match.
CLEAN_PATH = rf"(?!{DOT_SEGMENT})(?:[^?/\x5c%]++|/(?!{DOT_SEGMENT})|%(?!{BAD_HEX}))*+"
BAD_PATH = rf"(?:{DOT_SEGMENT}|[^?]*?(?:/{DOT_SEGMENT}|\x5c|%{BAD_HEX}))"
READ_METHODS = ("GET", "HEAD")


def _dispatch_key(predicates: dict[tuple[str, str], Predicate]) -> str:
    """The dispatch map's source: [bits ]method body host target (see the module docstring)."""
    bits = "".join(f"${{{p.var}}}" for p in predicates.values())
    fields = "$request_method $http_content_length$http_transfer_encoding $host $request_uri"
    return f"{bits} {fields}" if bits else fields


def _dispatch(policy: Policy, predicates: dict[tuple[str, str], Predicate],
              cookies: dict[str, CookieValue], purge: bool) -> tuple[Target, ...]:
    """The dispatch map: a regex per rule, the default rule, PURGE, then the guards' verdicts.

    Values are named locations: ``<ident>`` for a request whose query holds no ignored parameter
    (every rule, then the default rule: first match wins), then the same regexes again for the
    others, valued ``<ident>q``; ``$cw_purge_target`` for PURGE; ``guard-<status>`` for refusals,
    in the guards' order: path 400, method 501, body on GET/HEAD 400, host 421.
    """
    field = "[01]* " if predicates else ""
    host = host_pattern(policy.listen.hosts) if policy.listen.hosts else "[^ ]*"
    rest = r"(?:\?(?<cw_rawquery>.*))?$"
    ignored = _ignore_alternation(policy)
    routes = []
    for rule in policy.rules:
        head = _bits(rule, predicates, cookies) + field + _methods_and_body(rule.match.methods or SAFE_METHODS)
        routes.append((f"^{head} {host} (?<cw_path>{_path_condition(rule)}{CLEAN_PATH})", rule.ident,
                       f"rule {rule.name}"))
    head = field + _methods_and_body(SAFE_METHODS)
    routes.append((f"^{head} {host} (?<cw_path>{CLEAN_PATH})", "default", "rule default (requests no rule matches)"))
    if ignored is None:
        out = [Target(regex + rest, ident, comment, ident) for regex, ident, comment in routes]
    else:
        # no parameter of the query is ignored: the rule's location proxies the target as is
        plain = rf"(?:\?(?<cw_rawquery>(?!(?:[^&]*&)*{ignored}(?:[=&]|$)).*))?$"
        out = [Target(regex + plain, ident, comment, ident) for regex, ident, comment in routes]
        out += [Target(regex + rest, f"{ident}q", f"{comment}, query holding an ignored parameter", ident)
                for regex, ident, comment in routes]
    if purge:
        out.append(Target(f"^{field}PURGE [^ ]* {host} (?<cw_path>{CLEAN_PATH}){rest}",
                          "$cw_purge_target", "PURGE"))
    methods = "|".join(SAFE_METHODS + (("PURGE",) if purge else ()))
    out += [Target(f"^{field}[^ ]* [^ ]* [^ ]* {BAD_PATH}", "guard-400", "path hygiene"),
            Target(f"^{field}(?!(?:{methods}) )", "guard-501", "methods"),
            Target(f"^{field}(?:GET|HEAD) (?!0* )", "guard-400",
                   "GET and HEAD with a body: the body would reach the origin without being in the key")]
    return tuple(out)


def _methods_and_body(methods: tuple[str, ...]) -> str:
    """The method and body fields: GET and HEAD without a body (Content-Length absent or 0), the
    other methods with any."""
    read = [m for m in methods if m in READ_METHODS]
    other = [m for m in methods if m in SAFE_METHODS and m not in READ_METHODS]
    fields = ([f"(?:{'|'.join(read)}) 0*"] if read else []) + ([f"(?:{'|'.join(other)}) [^ ]*"] if other else [])
    return "(?:" + "|".join(fields) + ")" if fields else "(?!)"


def _path_condition(rule: Rule) -> str:
    """Lookaheads at the start of the raw path: its prefix or exact path, its extension (before
    the query)."""
    m = rule.match
    out = f"(?={literal_regex(m.path_prefix)})" if m.path_prefix else ""
    if m.path is not None:  # the whole raw path: the query or the end follows
        out += rf"(?={literal_regex(m.path)}(?:\?|$))"
    if m.extensions:
        out += rf"(?=[^?]*{extension_pattern(m.extensions)}(?:\?|$))"
    return out


def _location(policy: Policy, rule: Rule, cookies: dict[str, CookieValue],
              tags: tuple[str, ...]) -> Location:
    marker = f"rule {rule.name} ({policy.where(f'rules[{rule.index}]')})"
    if rule.name == "default":
        marker = "rule default (requests no rule matches)"
    plain, stored = _bypass_and_no_cache(rule)
    bypass = ["$cw_q_left", *plain]
    respond = _responds_in_njs(policy, rule)
    set_cookie_ok = rule.strip_cookies or "set-cookie" in rule.relax
    mode = ("O" if rule.origin_headers == "override" else "R") + ("S" if set_cookie_ok else "K")
    return Location(
        ident=rule.ident,
        name=rule.name,
        marker=marker,
        cache=rule.cache,
        key=_key(policy, rule, cookies, "$cw_query"),
        valid=_valid(policy, rule),
        ignore_headers=_ignore_headers(rule),
        strip_cookies=rule.strip_cookies,
        bypass=" ".join(bypass),
        no_cache=" ".join(["$cw_q_left", *stored, "$cw_nostore"]),
        plain_key=_key(policy, rule, cookies, "$cw_rawquery"),
        plain_bypass=" ".join(plain),
        plain_no_cache=" ".join([*stored, "$cw_nostore"]),
        map_keys=(("\\default" if rule.ident == "default" else rule.ident),
                  *((f"{rule.ident}q",) if policy.cache.query.ignore else ())),
        mode=mode if rule.cache else "N",
        forward_cookie=_forward_cookie(rule, cookies),
        keep_cookies=("".join(f"${{{cookies[c].var}_pair}}" for c in rule.key.cookies)
                      if rule.key.cookies else None),
        hide_headers=_hide_headers(tags, rule, respond),
        strip_headers=stripped(rule),
        respond=respond,
    )


def _bypass_and_no_cache(rule: Rule) -> tuple[list[str], list[str]]:
    """The request headers that make ``rule`` skip the lookup (``proxy_cache_bypass``) and that
    keep its answer from being stored (``proxy_no_cache``), less what the rule keys on or relaxes.
    RFC 9111 3.5: under respect an answer to a request with Authorization is stored when it says
    public, s-maxage or must-revalidate ($cw_auth_nostore); under override never."""
    bypass, no_cache = [], []
    if "authorization" not in {h.lower() for h in rule.key.headers}:
        respect = rule.origin_headers == "respect"
        no_cache.append("$cw_auth_nostore" if respect else "$http_authorization")
        if not (respect and "authorization-lookup" in rule.relax):
            bypass.append("$http_authorization")
    if not (rule.strip_cookies or rule.key.cookies or "request-cookie" in rule.relax):
        bypass.append("$http_cookie")
        no_cache.append("$http_cookie")
    if rule.origin_headers == "respect":
        no_cache.append("$cw_req_nostore")  # RFC 9111 5.2.1.5: the request's own no-store
    if "request-no-cache" in rule.relax:
        bypass.append("$cw_req_nocache")  # RFC 9111 5.2.1.1, 5.2.1.4, 5.4: fetched, then stored
    return bypass, no_cache


def _responds_in_njs(policy: Policy, rule: Rule) -> bool:
    """With nginx.njs, a respecting rule's stored answers carry their age (RFC 9111 4: a cache
    MUST generate Age when it answers from storage), which nginx keeps nowhere a variable shows,
    and lose the fields the origin listed in Connection (RFC 9110 7.6.1), which no directive can
    name."""
    return policy.nginx.njs and rule.cache and rule.origin_headers == "respect"


def _hide_headers(tags: tuple[str, ...], rule: Rule, njs: bool) -> tuple[str, ...]:
    """Origin response headers clients never see: Cache-Status is ours, tag headers are consumed
    by the cache (as on Varnish), Set-Cookie is dropped where cookies are stripped, and Age is
    the cache's own where njs counts it (cw.respond passes the origin's on a miss)."""
    return ("Cache-Status", *tags, *(("Set-Cookie",) if rule.strip_cookies else ()),
            *(("Age",) if njs else ()))


def tag_headers(policy: Policy) -> tuple[str, ...]:
    """Every response header a rule takes tags from, sorted."""
    return tuple(sorted({r.tags_from_header for r in policy.rules if r.tags_from_header}))


def _key(policy: Policy, rule: Rule, cookies: dict[str, CookieValue], query: str) -> str:
    """proxy_cache_key: parts separated by a newline (which no request text can contain). ``query``
    is the variable holding the normalised query (the raw one where nothing is ignored)."""
    parts = {"scheme": "$scheme://", "host": "$host", "path": "$cw_path", "query": f"?{query}"}
    key = "".join(parts[p] for p in policy.cache.key)
    for header in rule.key.headers:
        key += f"\\nh:{header.lower()}:{header_var(header)}"
    for cookie in rule.key.cookies:
        key += f"\\nc:{cookie}:${cookies[cookie].var}"
    for header in rule.vary:
        key += f"\\nv:{header.lower()}:{header_var(header)}"
    return key


def _valid(policy: Policy, rule: Rule) -> tuple[tuple[str, str], ...]:
    """``proxy_cache_valid`` lines: a status listed in status_ttl takes its own TTL, the rule's
    covers the other default statuses (nginx uses the first line naming a status, so a status
    must not be on two lines; Varnish's lowering gives status_ttl the same precedence)."""
    ttl = rule.ttl if rule.ttl is not None else policy.cache.default_ttl
    listed = {str(code) for code, _ in policy.cache.status_ttl}
    codes = " ".join(c for c in DEFAULT_STATUSES.split() if c not in listed)
    valid = [(codes, format_duration(ttl))] if ttl and codes else []
    valid += [(str(code), format_duration(t)) for code, t in policy.cache.status_ttl if t]
    return tuple(valid)


def _ignore_headers(rule: Rule) -> str:
    parts = ["Cache-Control Expires"] if rule.origin_headers == "override" else []
    if rule.strip_cookies or "set-cookie" in rule.relax:
        parts.append("Set-Cookie")
    return " ".join([*parts, X_ACCEL])


def _forward_cookie(rule: Rule, cookies: dict[str, CookieValue]) -> str:
    if rule.strip_cookies:
        return '""'
    if rule.key.cookies:
        return f"$cw_keep_{rule.ident}"
    return "$http_cookie"


def _background_update(policy: Policy) -> bool:
    """Stale answers while one request updates the entry in the background: for the policy's
    while_revalidate, and for a respected origin's own stale-while-revalidate (RFC 5861), which
    nginx reads from Cache-Control but serves stale for only with background updates on."""
    respects = any(r.cache and r.origin_headers == "respect" for r in (*policy.rules, policy.default_rule))
    return policy.cache.stale.while_revalidate > 0 or respects


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

