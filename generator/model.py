"""The validated policy: frozen, typed records. Built once by ``load``; never re-checked after."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

OriginHeaders = Literal["respect", "override"]
TlsProfile = Literal["modern", "intermediate", "old"]
KeyPart = Literal["scheme", "host", "path", "query"]
PurgeKind = Literal["url", "pattern", "tag", "all"]
#: the named ways the defaults are stricter than RFC 9111 (docs/policy.md); a rule may relax them
Deviation = Literal["authorization-lookup", "request-cookie", "set-cookie", "heuristic-freshness",
                    "request-no-cache"]
DEVIATIONS: tuple[Deviation, ...] = ("authorization-lookup", "request-cookie", "set-cookie",
                                     "heuristic-freshness", "request-no-cache")

CACHEABLE_METHODS = ("GET", "HEAD")
SAFE_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


@dataclass(frozen=True)
class Server:
    host: str
    port: int
    #: as written in origin.url (load refuses a mix); the lowering reads ``Origin.tls`` instead
    scheme: str = "http"


@dataclass(frozen=True)
class Probe:
    path: str
    interval: int
    timeout: int
    window: int
    threshold: int
    expected_status: int


#: the CA bundle an https origin is verified against when the policy names none (Debian's
#: ca-certificates; the same path on Ubuntu and Alpine)
SYSTEM_CA = "/etc/ssl/certs/ca-certificates.crt"


@dataclass(frozen=True)
class OriginTls:
    """How the cache speaks TLS to https origin servers."""

    verify: bool
    #: PEM file of trusted certificates; None: ``SYSTEM_CA``
    ca: str | None
    #: the name sent as SNI and checked against the certificate; None: the servers' one host
    server_name: str | None
    protocols: tuple[str, ...]
    verify_depth: int

    @property
    def trusted(self) -> str:
        """The trusted-certificates file the engine reads."""
        return self.ca or SYSTEM_CA


@dataclass(frozen=True)
class Origin:
    servers: tuple[Server, ...]
    host_header: str | None
    probe: Probe | None
    connect_timeout: int
    read_timeout: int
    #: None: plain http to every server; else https to every server
    tls: OriginTls | None = None

    @property
    def scheme(self) -> str:
        """``https`` when the cache speaks TLS to the origin, else ``http``."""
        return "https" if self.tls else "http"

    @property
    def tls_name(self) -> str:
        """The name sent as SNI and verified: ``tls.server_name``, else the first server's host."""
        return (self.tls.server_name if self.tls else None) or self.servers[0].host


@dataclass(frozen=True)
class Hsts:
    max_age: int
    include_subdomains: bool
    preload: bool


@dataclass(frozen=True)
class HttpListener:
    address: str
    port: int


@dataclass(frozen=True)
class HttpsListener:
    address: str
    port: int
    certificate: str
    key: str
    profile: TlsProfile
    redirect_http: bool
    hsts: Hsts | None
    http2: bool


@dataclass(frozen=True)
class Listen:
    http: HttpListener | None
    https: HttpsListener | None
    hosts: tuple[str, ...]


@dataclass(frozen=True)
class QueryPolicy:
    ignore: tuple[str, ...]
    sort: bool


@dataclass(frozen=True)
class Stale:
    while_revalidate: int
    if_error: int


@dataclass(frozen=True)
class CachePolicy:
    size: int
    key: tuple[KeyPart, ...]
    query: QueryPolicy
    origin_headers: OriginHeaders
    default_ttl: int
    stale: Stale
    collapse_requests: bool
    status_ttl: tuple[tuple[int, int], ...]
    #: seconds an expired entry is kept to be revalidated (conditional request, 304) after its
    #: freshness and stale windows
    keep: int = 86400
    #: targeted cache-control fields (RFC 9213), the first present wins over Cache-Control
    targeted: tuple[str, ...] = ("CDN-Cache-Control",)


@dataclass(frozen=True)
class ValueMatch:
    """A header or cookie condition: ``regex`` None means "present"."""

    name: str
    regex: str | None


@dataclass(frozen=True)
class Match:
    path_prefix: str | None = None
    path_regex: str | None = None
    #: the raw path is exactly this (no query)
    path: str | None = None
    extensions: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    headers: tuple[ValueMatch, ...] = ()
    cookies: tuple[ValueMatch, ...] = ()


@dataclass(frozen=True)
class ExtraKey:
    headers: tuple[str, ...] = ()
    cookies: tuple[str, ...] = ()


@dataclass(frozen=True)
class Rule:
    """One ordered rule. ``index`` is its position (0-based); ``ident`` a generated identifier."""

    name: str
    index: int
    match: Match
    cache: bool
    ttl: int | None
    origin_headers: OriginHeaders
    strip_cookies: bool
    vary: tuple[str, ...]
    key: ExtraKey
    tags_from_header: str | None
    #: deviations from RFC 9111 this rule drops (it then does what the RFC allows)
    relax: tuple[Deviation, ...] = ()

    @property
    def ident(self) -> str:
        """A generated identifier (never user text): ``r1``, ``r2``, ... and ``default``."""
        return "default" if self.name == "default" else f"r{self.index + 1}"


@dataclass(frozen=True)
class Purge:
    allow: tuple[str, ...]
    kinds: tuple[PurgeKind, ...]
    soft: bool


@dataclass(frozen=True)
class Headers:
    cache_status: bool
    cache_status_name: str


@dataclass(frozen=True)
class NginxOptions:
    #: njs loaded: Age on the hits of respecting rules, the origin's Connection fields dropped
    njs: bool = False


Engine = Literal["nginx", "varnish"]
Routing = Literal["replicas", "shard"]


@dataclass(frozen=True)
class Node:
    name: str
    address: str


@dataclass(frozen=True)
class Tier:
    name: str
    engine: Engine
    #: how the tier in front (or, for the front tier, an outside balancer) spreads requests here
    routing: Routing
    #: inner tiers: the plain-HTTP port the tier in front connects to (None: not given, 80)
    port: int | None
    nodes: tuple[Node, ...]

    @property
    def inner_port(self) -> int:
        """The port an inner tier's nodes listen on."""
        return 80 if self.port is None else self.port


@dataclass(frozen=True)
class FleetHealth:
    interval: int
    timeout: int
    window: int
    threshold: int
    fail_timeout: int


@dataclass(frozen=True)
class Fleet:
    """Tiers of cache nodes, the front tier first (docs/fleets.md)."""

    tiers: tuple[Tier, ...]
    health: FleetHealth


@dataclass(frozen=True)
class FleetRole:
    """What makes one node's derived policy a fleet member (generator/fleet.py): the lowerings
    read it; a single-node policy has none."""

    node: Node
    tier: Tier
    #: how this node reaches the next tier's nodes (its origin); None: last tier, the real origin
    next_routing: Routing | None
    #: addresses of the tier in front, the only ones trusted for forwarding headers (empty: the
    #: front tier, which trusts nobody)
    trusted: tuple[str, ...]
    health: FleetHealth

    @property
    def inner(self) -> bool:
        """Behind another tier: the scheme and client address come from the trusted hop."""
        return bool(self.trusted)


@dataclass(frozen=True)
class Policy:
    version: int
    name: str
    source: str
    origin: Origin
    listen: Listen
    cache: CachePolicy
    rules: tuple[Rule, ...]
    default_rule: Rule
    purge: Purge | None
    headers: Headers
    accept_missing: tuple[tuple[str, tuple[str, ...]], ...] = ()
    nginx: NginxOptions = NginxOptions()
    fleet: Fleet | None = None
    #: set on a node's derived policy only (generator/fleet.py)
    role: FleetRole | None = None
    marks: Mapping[str, tuple[int, int]] = field(default_factory=dict, compare=False, repr=False)
    #: what compiles but may not be what was meant, as ``file:line:col: path: warning: ...``
    warnings: tuple[str, ...] = field(default=(), compare=False, repr=False)

    def where(self, path: str) -> str:
        """``file:line:col`` of ``path`` in the policy source (for messages)."""
        line, col = self.marks.get(path, (1, 1))
        return f"{self.source}:{line}:{col}"

    def accepted_missing(self, engine: str) -> tuple[str, ...]:
        """Features the policy explicitly accepts ``engine`` lacks."""
        return dict(self.accept_missing).get(engine, ())

    @property
    def tag_header(self) -> str | None:
        """The response header that carries surrogate keys, if any rule names one."""
        names = [r.tags_from_header for r in self.rules if r.tags_from_header]
        return names[0] if names else None
