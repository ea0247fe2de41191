"""The policy language v1, declared once: read by ``load``, published by ``cachewright schema``,
and rendered into ``docs/policy.md``. Each field says how it maps onto each engine.
"""

from __future__ import annotations

import ipaddress
import re

from . import dialect
from .model import DEVIATIONS
from .spec import Bool, Duration, Enum, Field, Int, ListOf, MapOf, Obj, Size, Str
from .targets import ENGINES

HEADER_NAME = Str(r"[A-Za-z][A-Za-z0-9-]*", "an HTTP header name such as X-Api-Version", 64)
COOKIE_NAME = Str(r"[A-Za-z0-9!#%&*+.^_|~-]+", "a cookie name (letters, digits, !#%&*+.^_|~-)", 128)
HOSTNAME = r"(?:\*\.)?(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
HOST = Str(HOSTNAME, "a lowercase host name such as shop.example.com or *.example.com", 253)
PLAIN_HOST = Str(HOSTNAME.replace(r"(?:\*\.)?", ""), "a lowercase host name or IPv4 address", 253)
# Raw request-target path characters (RFC 3986 pchar and '/'); '%' only as a %XX escape.
PATH = r"/(?:[A-Za-z0-9\-._~!$&'()*+,;=:@/]|%[0-9A-Fa-f]{2})*"
PATH_HINT = "a path starting with /, percent-encoded where needed (e.g. /static/, /my%20files/)"
RULE_NAME = r"[a-z][a-z0-9_-]{0,62}"
NAME = Str(RULE_NAME, "lowercase letters, digits, '-' and '_', starting with a letter", 63)
METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def _check_regex(value: str) -> str | None:
    """The policy's regex dialect (``generator/dialect.py``), and what a VCL string can hold."""
    if '"}' in value or value.endswith('"'):
        return 'a regular expression may not contain \'"}\' or end in \'"\' (write the quote as \\x22)'
    return dialect.check(value)


def _check_cidr(value: str) -> str | None:
    if not re.fullmatch(r"[0-9A-Fa-f.:/]+", value):
        return f'"{value[:60]}" is not an address or network (e.g. 127.0.0.1/32, 10.0.0.0/8)'
    try:
        ipaddress.ip_network(value, strict=True)
    except ValueError as exc:
        return f'"{value}" is not an address or network ({exc}; e.g. 127.0.0.1/32, 10.0.0.0/8)'
    return None


ORIGIN_URL = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>[^/:?#]*)"
                        r"(?::(?P<port>[^/?#]*))?(?P<rest>.*)")
ORIGIN_URL_HINT = "expected http://host[:port] or https://host[:port], e.g. http://app:8000"


def _check_origin_url(value: str) -> str | None:
    match = ORIGIN_URL.fullmatch(value)
    if not match:
        return f'"{value}" is not an origin URL ({ORIGIN_URL_HINT})'
    scheme, host, port, rest = match.group("scheme", "host", "port", "rest")
    if scheme not in ("http", "https"):
        return f'"{value}": scheme "{scheme}" is not supported ({ORIGIN_URL_HINT})'
    if not re.fullmatch(str(PLAIN_HOST.pattern), host):
        return f'"{value}": "{host}" is not a lowercase host name or IPv4 address ({ORIGIN_URL_HINT})'
    if port is not None and not (port.isdigit() and 0 < int(port) < 65536):
        return f'"{value}" has an invalid port (1-65535)'
    if rest not in ("", "/"):
        return (f'"{value}" has a path or query ("{rest}"); an origin URL names a server only '
                f"(requests keep their own path; {ORIGIN_URL_HINT})")
    return None


REGEX = Str(None, "a regular expression (the PCRE2 and Python common dialect: no back-references; "
            "see docs/policy.md)", 1024, _check_regex)
DURATION = Duration()
#: the longest cache.keep: an entry nobody asked for in a month is not worth revalidating, and
#: nginx removes entries not accessed for proxy_cache_path's inactive (which keep extends)
MAX_KEEP = 30 * 86400
PORT = Int(1, 65535)
ADDRESS = Str(r"[0-9.]+|\[[0-9a-fA-F:]+\]", "an IPv4 address or [IPv6] address", 64,
              lambda v: None if _ip_ok(v.strip("[]")) else f'"{v}" is not an IP address')


def _ip_ok(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


PROBE = Obj("probe", {
    "path": Field(Str(PATH, PATH_HINT), "Path requested by the health probe.", "/",
                  nginx="unsupported (active checks are NGINX Plus only); passive max_fails is always on",
                  varnish="`.probe` `.url`"),
    "interval": Field(DURATION, "Time between probes.", 5, varnish="`.interval`"),
    "timeout": Field(DURATION, "Probe timeout.", 2, varnish="`.timeout`"),
    "window": Field(Int(1, 64), "Number of recent probes considered.", 5, varnish="`.window`"),
    "threshold": Field(Int(1, 64), "Probes in the window that must succeed.", 3,
                       varnish="`.threshold`"),
    "expected_status": Field(Int(100, 599), "Status that counts as healthy.", 200,
                             varnish="`.expected_response`"),
}, "Active health probe of every origin server.")

TLS_PROTOCOLS = ("TLSv1.2", "TLSv1.3")
FILE_PATH = Str(r"[A-Za-z0-9_./-]+", "a file path (letters, digits, _ . / -)", 512)

ORIGIN_TLS = Obj("origin tls", {
    "verify": Field(Bool(), "Check the origin's certificate chain and name. false accepts any "
                    "certificate (a compile warning says so).", True,
                    nginx="`proxy_ssl_verify`", varnish="unsupported (see origin.https)"),
    "ca": Field(FILE_PATH, "PEM file of the certificates trusted for the origin; default: the "
                "system bundle /etc/ssl/certs/ca-certificates.crt. A relative path is read beside "
                "the policy at load and written as given (nginx resolves it against the "
                "directory of nginx.conf).", None, nullable=True, example="certs/origin-ca.pem",
                nginx="`proxy_ssl_trusted_certificate`"),
    "server_name": Field(PLAIN_HOST, "Name sent as SNI and checked against the origin's "
                         "certificate; default: the host of origin.url (never the client's "
                         "Host, nor origin.host_header).", None, nullable=True,
                         example="app.internal.example.com",
                         nginx="`proxy_ssl_name`, `proxy_ssl_server_name on`"),
    "protocols": Field(ListOf(Enum(TLS_PROTOCOLS), min_items=1), "TLS versions offered to the "
                       "origin.", TLS_PROTOCOLS, nginx="`proxy_ssl_protocols`"),
    "verify_depth": Field(Int(1, 9), "Intermediate certificates allowed between the origin's "
                          "certificate and a trusted one.", 3, nginx="`proxy_ssl_verify_depth`"),
}, "TLS to https origin servers (only with https:// URLs).")

ORIGIN = Obj("origin", {
    "url": Field(ListOf(Str(None, "an origin URL such as http://app:8000", 300, _check_origin_url),
                        min_items=1, one_or_many=True),
                 "One origin URL or a list of them (`http://host[:port]` or "
                 "`https://host[:port]`, all with the same scheme); requests are balanced "
                 "round-robin.", example="http://app:8000",
                 nginx="`upstream` block, one `server` each, `max_fails=3 fail_timeout=10s`; "
                       "`proxy_pass https://` for https",
                 varnish="one `backend` each, `directors.round_robin()` when more than one; "
                         "https unsupported (see origin.https)"),
    "tls": Field(ORIGIN_TLS, "TLS to https origin servers; defaults apply to https URLs.", None,
                 nullable=True),
    "host_header": Field(HOST, "Host header sent to the origin; default: the client's Host.",
                         None, nullable=True, example="shop.example.com",
                         nginx="`proxy_set_header Host`", varnish="`bereq.http.Host`"),
    "probe": Field(PROBE, "Active health probe (Varnish only; see the capability matrix).", None,
                   nullable=True),
    "connect_timeout": Field(DURATION, "Time allowed to connect to the origin.", 5,
                             nginx="`proxy_connect_timeout`", varnish="`.connect_timeout`"),
    "read_timeout": Field(DURATION, "Time allowed between bytes from the origin.", 30,
                          nginx="`proxy_read_timeout`",
                          varnish="`.first_byte_timeout`, `.between_bytes_timeout`"),
}, "Where cache misses go.")

HSTS = Obj("hsts", {
    "max_age": Field(DURATION, "max-age of Strict-Transport-Security.", 31536000,
                     nginx="`add_header Strict-Transport-Security` (https only, via `map $scheme`)",
                     varnish="`beresp.http.Strict-Transport-Security` on a fetch over https "
                             "(stored with the object; `resp.http` in `vcl_deliver` where the key "
                             "has no scheme), `resp.http` in `vcl_synth`"),
    "include_subdomains": Field(Bool(), "Add includeSubDomains.", False),
    "preload": Field(Bool(), "Add preload.", False),
}, "HTTP Strict Transport Security, sent on HTTPS responses only.")

HTTP = Obj("http listener", {
    "address": Field(ADDRESS, "Address to bind.", "0.0.0.0", nginx="`listen ADDRESS:PORT`",
                     varnish="varnishd `-a http=ADDRESS:PORT`"),
    "port": Field(PORT, "Port to bind.", 80, nginx="`listen ADDRESS:PORT`",
                  varnish="varnishd `-a http=ADDRESS:PORT`"),
}, "Plain HTTP listener.")

HTTPS = Obj("https listener", {
    "address": Field(ADDRESS, "Address to bind.", "0.0.0.0", nginx="`listen ADDRESS:PORT ssl`",
                     varnish="Hitch `frontend`"),
    "port": Field(PORT, "Port to bind.", 443, nginx="`listen ADDRESS:PORT ssl`",
                  varnish="Hitch `frontend` (Hitch forwards to varnishd `-a https=...,PROXY`)"),
    "certificate": Field(Str(r"[A-Za-z0-9_./-]+", "a file path (letters, digits, _ . / -)", 512),
                         "PEM certificate chain file.", example="certs/shop.crt",
                         nginx="`ssl_certificate`", varnish="Hitch `pem-file` `cert`"),
    "key": Field(Str(r"[A-Za-z0-9_./-]+", "a file path (letters, digits, _ . / -)", 512),
                 "PEM private key file.", example="certs/shop.key",
                 nginx="`ssl_certificate_key`", varnish="Hitch `pem-file` `private-key`"),
    "profile": Field(Enum(("modern", "intermediate", "old")),
                     "Mozilla server-side TLS profile; protocols, ciphers and curves are always "
                     "written out.", "intermediate",
                     nginx="`ssl_protocols`, `ssl_ciphers`, `ssl_ecdh_curve`",
                     varnish="Hitch `tls-protos`, `ciphers`, `ciphersuites`, `ecdh-curve`"),
    "redirect_http": Field(Bool(), "Answer plain HTTP with a 301 to HTTPS.", False,
                           nginx="a plain `server` that `return 301 https://...`",
                           varnish="`synth(750)` turned into a 301 in `vcl_synth`"),
    "hsts": Field(HSTS, "Strict-Transport-Security on HTTPS responses.", None, nullable=True),
    "http2": Field(Bool(), "Offer HTTP/2 through ALPN.", False,
                   nginx="`listen ... http2` (1.22) / `http2 on` (>= 1.25.1)",
                   varnish="Hitch `alpn-protos`, varnishd `-p feature=+http2`"),
}, "TLS listener: Nginx terminates TLS itself; Varnish gets Hitch in front (PROXY v2).")

LISTEN = Obj("listen", {
    "http": Field(HTTP, "Plain HTTP listener.", {"address": "0.0.0.0", "port": 80}, nullable=True),
    "https": Field(HTTPS, "HTTPS listener.", None, nullable=True),
    "hosts": Field(ListOf(HOST), "Host names served; other hosts get 421. Empty: any host.", (),
                   example=["shop.example.com", "www.shop.example.com"],
                   nginx="host part of the `$cw_target` dispatch regexes → `@guard-421`",
                   varnish="`req.http.host ==` comparisons (one regex for `*.` names or more than "
                           "8 hosts) → `synth(421)`"),
}, "Where the cache listens.")

QUERY = Obj("query", {
    "ignore": Field(ListOf(Str(r"[A-Za-z0-9_.*\[\]-]+", "a parameter name or glob such as utm_*",
                               128)),
                    "Query parameters (globs) removed from the key and from what the origin "
                    "receives.", (), example=["utm_*", "fbclid"],
                    nginx="8 chained `map` regex passes; more ignored parameters: the request bypasses the cache",
                    varnish="`regsuball` on `req.url`"),
    "sort": Field(Bool(), "Sort query parameters so their order does not matter.", False,
                  nginx="unsupported", varnish="`std.querysort`"),
}, "Query-string normalisation.")

STALE = Obj("stale", {
    "while_revalidate": Field(DURATION, "After expiry, serve stale at once for this long while one "
                              "background fetch refreshes.", 0,
                              nginx="`proxy_cache_use_stale updating`, "
                                    "`proxy_cache_background_update on`",
                              varnish="`beresp.grace`"),
    "if_error": Field(DURATION, "Serve stale for this long when the origin fails.", 0,
                      nginx="`proxy_cache_use_stale error timeout http_5xx`",
                      varnish="`beresp.keep` + stale delivery on backend error"),
}, "Serving stale content.")

KEY_PARTS = ("scheme", "host", "path", "query")
CACHE = Obj("cache", {
    "size": Field(Size(), "Cache storage size.", 256 * 1024 * 1024,
                  nginx="`proxy_cache_path ... max_size`", varnish="`-s malloc,SIZE`"),
    "key": Field(ListOf(Enum(KEY_PARTS), min_items=1), "Request parts in the cache key.",
                 KEY_PARTS, nginx="`proxy_cache_key`", varnish="`vcl_hash`"),
    "query": Field(QUERY, "Query-string normalisation.", {"ignore": (), "sort": False}),
    "origin_headers": Field(Enum(("respect", "override")),
                            "respect: the origin's Cache-Control/Expires decide and a rule's ttl is "
                            "the fallback; override: the rule's ttl always (private and no-store "
                            "are still honoured).", "respect",
                            nginx="`proxy_ignore_headers Cache-Control Expires X-Accel-Expires`",
                            varnish="`beresp.ttl` in `vcl_backend_response`"),
    "default_ttl": Field(DURATION, "TTL for requests no rule matches, when the origin gives none.",
                         0, nginx="`proxy_cache_valid`", varnish="`beresp.ttl`"),
    "stale": Field(STALE, "Serving stale content.", {"while_revalidate": 0, "if_error": 0}),
    "collapse_requests": Field(Bool(), "Send one request to the origin for concurrent misses.",
                               True, nginx="`proxy_cache_lock on`, `proxy_cache_lock_timeout 75ms` "
                                            "(slower misses are not collapsed)",
                               varnish="native (waiting list)"),
    "keep": Field(Duration(maximum=MAX_KEEP), "After an entry's freshness and stale windows, keep it "
                  "this long to revalidate: the origin is asked with If-None-Match / "
                  "If-Modified-Since and a 304 refreshes the entry without a body (RFC 9111 "
                  "4.3). 0 turns revalidation off. Entries still leave earlier when cache.size "
                  "is full (least recently used first).", 86400,
                  nginx="`proxy_cache_revalidate on`; `proxy_cache_path ... inactive` covers it",
                  varnish="`beresp.keep`"),
    "targeted_fields": Field(ListOf(HEADER_NAME), "Targeted cache-control fields (RFC 9213), "
                             "in order: the first one the origin sends (and that parses) decides "
                             "instead of Cache-Control and Expires, for rules that respect origin "
                             "headers; [] ignores them all.", ("CDN-Cache-Control",),
                             example=["Cachewright-Cache-Control", "CDN-Cache-Control"],
                             nginx="unsupported (capability http.targeted_cc)",
                             varnish="`beresp.http.FIELD` stands in for Cache-Control"),
    "status_ttl": Field(MapOf(Int(100, 599), DURATION), "TTL by response status, e.g. {404: 1m}.",
                        (), example={404: "1m"}, nginx="`proxy_cache_valid CODE TIME`",
                        varnish="`beresp.ttl` by `beresp.status`"),
}, "Cache storage and key.")

VALUE_MATCH_FIELDS = {
    "regex": Field(REGEX, "Regular expression the value must match; omit for 'present'.", None,
                   nullable=True, example="^2"),
}
HEADER_MATCH = Obj("header match", {
    "name": Field(HEADER_NAME, "Request header name.", example="X-Api-Version"),
    **VALUE_MATCH_FIELDS})
COOKIE_MATCH = Obj("cookie match", {
    "name": Field(COOKIE_NAME, "Cookie name.", example="session"), **VALUE_MATCH_FIELDS})

MATCH = Obj("match", {
    "path_prefix": Field(Str(PATH, PATH_HINT, 1024), "Path starts with this literal.", None,
                         nginx="escaped, anchored regex in the rule-selection `map`",
                         varnish="`str.startswith(req.url, ...)` (vmod str; an anchored regex when "
                                 "it holds a %-escape) in the selection chain",
                         nullable=True, example="/static/"),
    "path_regex": Field(REGEX, "Path matches this regular expression (unanchored unless you "
                        "anchor it; the dialect both engines and the model read alike, see "
                        "Regular expressions).", None, nullable=True, example=r"^/p/[0-9]+$",
                        nginx="a 1-character `map` on `$cw_rawpath` feeding the dispatch `map`",
                        varnish='`var.get("path") ~ ...` in the selection chain'),
    "path": Field(Str(PATH, PATH_HINT, 1024), "Path is exactly this (the raw path, without the "
                  "query): `path: /` is the home page only.", None, nullable=True, example="/",
                  nginx="escaped regex anchored at both ends in the rule's dispatch regex",
                  varnish='`req.url == "..."` or `str.startswith(req.url, "...?")` (an anchored '
                          "regex when it holds a %-escape)"),
    "extensions": Field(ListOf(Str(r"[A-Za-z0-9]{1,16}", "a file extension without the dot")),
                        "Path ends in one of these extensions (case-insensitive).", (),
                        example=["css", "js"]),
    "methods": Field(ListOf(Enum(METHODS)), "Request method is one of these.", (),
                     example=["GET", "HEAD"],
                     nginx="method part of the rule-selection `map` key",
                     varnish="`req.method` (PURGE/BAN match as GET)"),
    "host": Field(ListOf(HOST, one_or_many=True), "Host is one of these (exact or *.domain).", (),
                  example="shop.example.com"),
    "header": Field(ListOf(HEADER_MATCH, one_or_many=True, unique=False), "Request header condition(s).", (),
                    nginx="a 1-character `map` on `$http_NAME` feeding the selection `map`",
                    varnish="`req.http.NAME ~ ...`; without a regex `str.count(req.http.NAME) > 0`"),
    "cookie": Field(ListOf(COOKIE_MATCH, one_or_many=True, unique=False), "Cookie condition(s).", (),
                    nginx="value extracted from `$http_cookie` by `map`, then a 1-character `map`",
                    varnish="`cookie.get(NAME) ~ ...` (vmod cookie); without a regex "
                            "`str.count(cookie.get(NAME)) > 0`"),
}, "Conditions, all of which must hold. Paths are matched on the raw request path.")

EXTRA_KEY = Obj("key", {
    "headers": Field(ListOf(HEADER_NAME), "Request headers added to the key.", (),
                     example=["X-Tenant"],
                     nginx="`\\nh:NAME:$http_NAME` appended to `proxy_cache_key`",
                     varnish="`hash_data(\"h:NAME:\" + req.http.NAME)`"),
    "cookies": Field(ListOf(COOKIE_NAME), "Cookies added to the key (the request then keeps only "
                     "these cookies).", (), example=["currency"],
                     nginx="value in `proxy_cache_key`; `Cookie` rebuilt from the kept pairs",
                     varnish="`hash_data(cookie.get(NAME))`; `cookie.keep()`"),
}, "Extra cache-key parts for this rule.")

RULE = Obj("rule", {
    "name": Field(NAME, "Unique rule name, shown in Cache-Status.", example="static"),
    "match": Field(MATCH, "Conditions (all must hold)."),
    "cache": Field(Bool(), "false: never cache, every request goes to the origin.", True,
                   nginx="`proxy_cache_bypass`, `proxy_no_cache`", varnish="`return (pass)`"),
    "ttl": Field(DURATION, "Freshness lifetime (fallback when origin_headers is respect).", None,
                 nullable=True, example="10m", nginx="`proxy_cache_valid`",
                 varnish="`beresp.ttl`"),
    "origin_headers": Field(Enum(("respect", "override")), "Overrides cache.origin_headers.", None,
                            example="override",
                            nginx="`proxy_ignore_headers Cache-Control Expires` in the rule's location",
                            varnish="per-behaviour `override` flag in `vcl_backend_response`",
                            nullable=True),
    "strip_cookies": Field(Bool(), "Drop request cookies and response Set-Cookie so the response "
                           "can be shared.", False,
                           nginx="`proxy_set_header Cookie \"\"`, `proxy_hide_header Set-Cookie`",
                           varnish="`unset req.http.Cookie`, `unset beresp.http.Set-Cookie`"),
    "vary": Field(ListOf(HEADER_NAME), "Request headers the response varies on.", (),
                  example=["Accept-Language"], nginx="added to `proxy_cache_key`",
                  varnish="merged into `beresp.http.Vary`"),
    "key": Field(EXTRA_KEY, "Extra key parts.", {"headers": (), "cookies": ()}),
    "relax": Field(ListOf(Enum(DEVIATIONS)), "Deviations from RFC 9111 this rule drops (see "
                   "'Where the defaults are stricter than RFC 9111'): authorization-lookup "
                   "(a request with Authorization may be answered from the cache), "
                   "request-cookie (a request with Cookie is looked up and stored like any "
                   "other: the origin must answer Vary: Cookie or private), set-cookie (a "
                   "response with Set-Cookie is stored, its Set-Cookie sent with every copy), "
                   "heuristic-freshness (a response with Last-Modified and no lifetime from the "
                   "origin or the rule is kept a tenth of its age, at most a day; Varnish only), "
                   "request-no-cache (a request with Cache-Control: no-cache or max-age=0, or "
                   "Pragma: no-cache without Cache-Control, is fetched from the origin and its "
                   "answer stored). Only with origin_headers: respect.", (),
                   example=["request-cookie"],
                   nginx="`proxy_cache_bypass` / `proxy_no_cache` without the header, "
                         "`proxy_ignore_headers Set-Cookie`; request-no-cache: "
                         "`proxy_cache_bypass $cw_req_nocache`",
                   varnish="no `return (pass)` / `hash_always_miss` for the header; "
                           "`Set-Cookie` no longer makes the object uncacheable; "
                           "request-no-cache: `hash_always_miss`"),
    "tags_from_header": Field(HEADER_NAME, "Response header carrying surrogate keys (tags) for "
                              "tag purges.", None, nullable=True, example="Surrogate-Key",
                              nginx="unsupported", varnish="copied to `xkey` (vmod xkey)"),
}, "One rule; rules are tried in order and the first match wins.")

PURGE = Obj("purge", {
    "allow": Field(ListOf(Str(None, "an address or network such as 127.0.0.1/32", 64, _check_cidr),
                          min_items=1), "Client addresses allowed to purge.",
                   example=["127.0.0.1/32"], nginx="`proxy_cache_purge ... from`",
                   varnish="`acl`"),
    "kinds": Field(ListOf(Enum(("url", "pattern", "tag", "all")), min_items=1),
                   "Purge kinds offered: url (PURGE /path), pattern (BAN /prefix), tag "
                   "(PURGE with Cache-Tags header), all.", ("url",),
                   nginx="url: ngx_cache_purge module; others unsupported",
                   varnish="`return (purge)`, `ban()`, `xkey.purge()`"),
    "soft": Field(Bool(), "Soft purge of tags: mark tagged objects stale instead of removing them "
                  "(URL purges stay hard).",
                  False, nginx="unsupported", varnish="`purge.soft()` / `xkey.softpurge()`"),
}, "Invalidation. Without this section purging is off.")

HEADERS = Obj("headers", {
    "cache_status": Field(Bool(), "RFC 9211 Cache-Status header on every response.", True,
                          nginx="`add_header Cache-Status` from `$upstream_cache_status`",
                          varnish="a hit's stored with the object in `vcl_backend_response` "
                                  "(`header.append`, vmod header; the origin's is removed), replaced in "
                                  "`vcl_deliver` on any other outcome, set in `vcl_synth`"),
    "cache_status_name": Field(Str(r"[a-z][a-z0-9_.-]{0,31}", "a short lowercase token"),
                               "Cache name used in Cache-Status.", "cachewright"),
}, "Response headers added by the cache.")

NGINX = Obj("nginx", {
    "njs": Field(Bool(), "Load njs (Debian: libnginx-mod-http-js) so that the rules that respect "
                 "origin headers send Age on a stored response (RFC 9111 5.1) and drop the fields "
                 "the origin lists in Connection (RFC 9110 7.6.1), as Varnish does; it costs "
                 "about 5 microseconds of CPU per hit (docs/compare.md). Without it nginx "
                 "reports both as engine limits.", False,
                 nginx="`load_module ngx_http_js_module.so`, `js_import` of nginx/cachewright.js, "
                       "`js_header_filter` in those rules' locations",
                 varnish="not used (core)"),
}, "Options of the nginx target only.")

NODE_NAME = Str(r"[a-z][a-z0-9_.-]{0,31}", "a short lowercase name (letters, digits, _ . -; it is "
                "the node's Cache-Status name)", 32)
NODE_ADDRESS = Str(r"[0-9.]+", "an IPv4 address such as 10.0.1.11 (IPv6 is not supported yet)", 15,
                   lambda v: None if _ip_ok(v) else f'"{v}" is not an IPv4 address')

NODE = Obj("node", {
    "name": Field(NODE_NAME, "Node name, unique in the fleet: its output directory and its "
                  "Cache-Status name.", example="edge-1"),
    "address": Field(NODE_ADDRESS, "The node's own IP address: where it listens, where the tier "
                     "in front connects to it, and what the tier behind it trusts.",
                     example="10.0.1.11"),
}, "One cache node.")

TIER = Obj("tier", {
    "name": Field(NAME, "Tier name, unique in the fleet.", example="edge"),
    "engine": Field(Enum(ENGINES), "The engine every node of the tier runs.", example="nginx"),
    "routing": Field(Enum(("replicas", "shard")), "How requests reach this tier's nodes: "
                     "replicas (round robin; for the front tier an outside balancer) or shard "
                     "(consistent hashing of the cache key by the tier in front; not for the "
                     "front tier).", "replicas",
                     nginx="the tier in front: `upstream` round robin, or `hash <cache key> "
                           "consistent`",
                     varnish="the tier in front: `directors.round_robin()`, or "
                             "`directors.shard()` with `.backend(by=HASH)`"),
    "port": Field(PORT, "Inner tiers: the plain-HTTP port the tier in front connects to; "
                  "default 80. Not for the front tier, which serves listen.", None, nullable=True,
                  example=8080, nginx="`listen ADDRESS:PORT`", varnish="`-a http=ADDRESS:PORT`"),
    "nodes": Field(ListOf(NODE, min_items=1, unique=False), "The tier's nodes.",
                   example=[{"name": "edge-1", "address": "10.0.1.11"}]),
}, "One tier of cache nodes; the first tier faces the clients, the last one the origin.")

FLEET_HEALTH = Obj("fleet health", {
    "interval": Field(DURATION, "Time between probes of a next-tier node.", 2,
                      varnish="`.interval` of each fleet backend's probe",
                      nginx="unsupported (no active checks; see fail_timeout)"),
    "timeout": Field(DURATION, "Probe timeout.", 1, varnish="`.timeout`"),
    "window": Field(Int(1, 64), "Recent probes considered.", 5, varnish="`.window`"),
    "threshold": Field(Int(1, 64), "Probes in the window that must succeed; on nginx the failed "
                       "attempts that mark a node down.", 3,
                       nginx="`max_fails`", varnish="`.threshold`"),
    "fail_timeout": Field(DURATION, "nginx: how long a node stays marked down (and the period "
                          "its failures are counted in).", 10, nginx="`fail_timeout`",
                          varnish="not used (probes decide)"),
}, "How a tier finds out that a node of the next tier is down.")

FLEET = Obj("fleet", {
    "tiers": Field(ListOf(TIER, min_items=1, unique=False), "The tiers, the front tier (clients "
                   "reach it) first, the origin side last.",
                   example=[{"name": "edge", "engine": "nginx",
                             "nodes": [{"name": "edge-1", "address": "10.0.1.11"}]}]),
    "health": Field(FLEET_HEALTH, "Health of next-tier nodes.", {}),
}, "Several cache nodes compiled from this one policy (docs/fleets.md); absent: one node.")

FEATURE_NAME = Str(r"[a-z_.]+", "a feature id from `cachewright capabilities`", 64)
ACCEPT_MISSING = Obj("accept_missing", {
    engine: Field(ListOf(FEATURE_NAME), f"Features this policy accepts {engine} lacks.", (),
                  example=["purge.tag"])
    for engine in ENGINES
}, "Explicitly accept that an engine lacks a feature (its checks then report 'unsupported').")

POLICY = Obj("policy", {
    "version": Field(Int(1, 1), "Policy language version; must be 1.", example=1),
    "name": Field(NAME, "Policy name (used in generated identifiers and headers).", example="shop"),
    "origin": Field(ORIGIN, "Where cache misses go."),
    "listen": Field(LISTEN, "Listeners.", {"http": {"address": "0.0.0.0", "port": 80},
                                            "https": None, "hosts": ()}),
    "cache": Field(CACHE, "Cache storage, key and defaults.", {}),
    "rules": Field(ListOf(RULE, unique=False), "Ordered rules; first match wins (names must be "
                   "unique).", ()),
    "purge": Field(PURGE, "Invalidation; off when absent.", None, nullable=True),
    "headers": Field(HEADERS, "Added response headers.", {}),
    "accept_missing": Field(ACCEPT_MISSING, "Accepted missing features per engine.", {}),
    "nginx": Field(NGINX, "Options of the nginx target only.", {}),
    "fleet": Field(FLEET, "Several cache nodes in tiers (docs/fleets.md); off when absent.", None,
                   nullable=True),
}, "A cachewright policy.")
