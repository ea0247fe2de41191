"""How a rule programs the data port: the ``Rule`` record and its validation (stdlib only).

Rules
-----
A rule is matched on the request path (the query is ignored). An exact ``path`` rule beats any
``pattern`` rule; among patterns (``fnmatch.fnmatchcase``: ``*`` also matches ``/``) the one
registered **last** wins. Registering a rule with the same ``path`` (or the same ``pattern``)
replaces the old one; a replaced pattern counts as newly registered. Fields (all optional but
exactly one of ``path``/``pattern``; unknown fields are an error)::

    path, pattern         exact path ("/a") or glob ("/api/*")
    status                200..599; default 200 (500 with failure "error", which needs 5xx)
    cache_control         Cache-Control value
    expires               Expires value sent verbatim; or expires_in: seconds from response time
    set_cookie            list of Set-Cookie values (one header each)
    vary                  Vary value
    etag                  ETag; quoted automatically unless it already is ("abc" or W/"abc")
    last_modified         HTTP-date string, or a number (epoch seconds)
    body                  "echo" (default) or "filler"
    body_size             echo: padded with spaces to at least this many bytes;
                          filler: exactly this many bytes, "<response id>\\n" then "x" * n
    delay                 seconds to wait before sending the headers (or before failing)
    failure               null | "error" (a 5xx, see status) | "refuse" (the connection is closed
                          without any response) | "close_mid_body" (headers with the full
                          Content-Length, half the body, then close)
    headers               extra headers: {"Name": "value"} or [["Name", "value"], ...]; a name
                          given here replaces the app's own header(s) of that name
    surrogate_keys        list of keys, sent space-separated in one header
    surrogate_key_header  that header's name; default from --surrogate-key-header (Surrogate-Key)
    interim               list of 1xx status codes (not 101) sent, each as a bare interim
                          response, before the final one
    connection            list of header names added to the response's Connection header (the
                          rule's own ``headers`` can then carry those hop-by-hop fields)
    sequence              list of answers, each an object of the fields above (no path, pattern
                          or sequence) over the rule's own: the n-th request the rule takes since
                          it was registered gets the n-th answer, the last one repeats
"""

from __future__ import annotations

import dataclasses
import email.utils
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Final, Literal, TypeAlias

from .wire import TOKEN_RE, Headers

MAX_RESPONSE_BODY: Final = 256 * 1024 * 1024
MAX_DELAY: Final = 3600.0

ETAG_RE: Final = re.compile(r'(?:W/)?"[^"]*"')
_FORBIDDEN_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# Headers that frame the message or identify the response: a rule must not override them.
_RESERVED_HEADERS: Final = frozenset(
    {"content-length", "transfer-encoding", "connection", "x-response-id"}
)

BodyMode: TypeAlias = Literal["echo", "filler"]
FailureMode: TypeAlias = Literal["error", "refuse", "close_mid_body"]
JsonObject: TypeAlias = dict[str, object]

_BODY_MODES: Final[Mapping[str, BodyMode]] = {"echo": "echo", "filler": "filler"}
_FAILURE_MODES: Final[Mapping[str, FailureMode]] = {
    "error": "error",
    "refuse": "refuse",
    "close_mid_body": "close_mid_body",
}


class RuleError(ValueError):
    """A rule sent to the control port is invalid; ``field`` names the culprit if one does."""

    def __init__(self, field: str | None, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field


@dataclass(frozen=True)
class Rule:
    """How the data port answers paths matching ``path`` (exact) or ``pattern`` (fnmatch)."""

    path: str | None = None
    pattern: str | None = None
    status: int = 200
    cache_control: str | None = None
    expires: str | None = None
    expires_in: float | None = None
    set_cookie: tuple[str, ...] = ()
    vary: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    body: BodyMode = "echo"
    body_size: int | None = None
    delay: float = 0.0
    failure: FailureMode | None = None
    headers: Headers = ()
    surrogate_keys: tuple[str, ...] = ()
    surrogate_key_header: str | None = None
    interim: tuple[int, ...] = ()
    connection: tuple[str, ...] = ()
    sequence: tuple[Rule, ...] = ()

    @property
    def key(self) -> str:
        """The rule's identity: its path, or ``pattern:<glob>``."""
        return self.path if self.path is not None else f"pattern:{self.pattern}"

    def to_json(self) -> JsonObject:
        """The rule as the control API shows it: status, plus every field not at its default."""
        default = DEFAULT_RULE
        return {
            spec.name: _plain(getattr(self, spec.name))
            for spec in dataclasses.fields(self)
            if spec.name == "status" or getattr(self, spec.name) != getattr(default, spec.name)
        }


def _plain(value: object) -> object:
    """Tuples become lists and rules objects, recursively, for JSON."""
    if isinstance(value, Rule):
        return value.to_json()
    return [_plain(v) for v in value] if isinstance(value, tuple) else value


DEFAULT_RULE: Final = Rule()
RULE_FIELDS: Final = tuple(spec.name for spec in dataclasses.fields(Rule))


class _Fields:
    """Typed, validating access to one rule's JSON object."""

    def __init__(self, raw: object) -> None:
        if not isinstance(raw, dict):
            raise RuleError(None, "a rule must be a JSON object")
        unknown = sorted(set(raw) - set(RULE_FIELDS))
        if unknown:
            raise RuleError(None, f"unknown field(s) {', '.join(map(str, unknown))}")
        self.raw: dict[str, object] = raw

    def text(self, name: str) -> str | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if not isinstance(value, str) or not value:
            raise RuleError(name, "must be a non-empty string")
        return value

    def header_value(self, name: str) -> str | None:
        value = self.text(name)
        return None if value is None else check_header_value(name, value)

    def number(self, name: str, maximum: float) -> float | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise RuleError(name, "must be a number")
        if not 0 <= value <= maximum:
            raise RuleError(name, f"must be between 0 and {maximum:g}")
        return float(value)

    def integer(self, name: str, low: int, high: int) -> int | None:
        value = self.raw.get(name)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            raise RuleError(name, f"must be an integer from {low} to {high}")
        return value

    def strings(self, name: str) -> tuple[str, ...]:
        value = self.raw.get(name, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise RuleError(name, "must be a list of non-empty strings")
        return tuple(check_header_value(name, v) for v in value)

    def choice(self, name: str, options: Mapping[str, str]) -> str | None:
        value = self.raw.get(name)
        if value is not None and value not in options:
            raise RuleError(name, f"must be one of {', '.join(sorted(options))}")
        return None if value is None else str(value)


def check_header_value(name: str, value: str) -> str:
    """Reject values that would break the header block (CR, LF, NUL, controls, non-Latin-1)."""
    if _FORBIDDEN_CONTROL.search(value):
        raise RuleError(name, "control characters (CR, LF, NUL, ...) are not allowed")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as exc:
        raise RuleError(name, "only Latin-1 characters are allowed") from exc
    return value


def _check_header_name(where: str, name: object) -> str:
    if not isinstance(name, str) or not TOKEN_RE.fullmatch(name):
        raise RuleError(where, f"{name!r} is not a valid header name")
    return name


def _extra_headers(raw: object) -> Headers:
    pairs: list[object]
    if isinstance(raw, dict):
        pairs = [[k, v] for k, v in raw.items()]
    elif isinstance(raw, list):
        pairs = raw
    else:
        raise RuleError("headers", "must be an object or a list of [name, value] pairs")
    return tuple(_extra_header(pair) for pair in pairs)


def _extra_header(pair: object) -> tuple[str, str]:
    if not isinstance(pair, list | tuple) or len(pair) != 2 or not isinstance(pair[1], str):
        raise RuleError("headers", "each entry must be [name, value] with a string value")
    name = _check_header_name("headers", pair[0])
    if name.lower() in _RESERVED_HEADERS:
        raise RuleError("headers", f"{name} is set by the origin and cannot be overridden")
    return name, check_header_value(f"headers.{name}", pair[1])


def _normalise_etag(value: str | None) -> str | None:
    if value is None:
        return None
    quoted = value if value.startswith(('"', 'W/"')) else f'"{value}"'
    if not ETAG_RE.fullmatch(quoted):
        raise RuleError("etag", f'{value!r} is not an entity tag (abc, "abc" or W/"abc")')
    return quoted


def _last_modified(raw: object) -> str | None:
    if raw is None:
        return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return email.utils.formatdate(float(raw), usegmt=True)
    if isinstance(raw, str) and parse_http_date(raw) is not None:
        return check_header_value("last_modified", raw)
    raise RuleError("last_modified", "must be an HTTP-date or a number of epoch seconds")


def _surrogate_keys(fields: _Fields) -> tuple[str, ...]:
    keys = fields.strings("surrogate_keys")
    if any(any(ch.isspace() for ch in key) for key in keys):
        raise RuleError("surrogate_keys", "keys cannot contain whitespace")
    return keys


def parse_rule(raw: object) -> Rule:
    """Validate one rule's JSON object and build the ``Rule``; raises ``RuleError``."""
    fields = _Fields(raw)
    failure = fields.choice("failure", _FAILURE_MODES)
    rule = Rule(
        path=fields.text("path"),
        pattern=fields.text("pattern"),
        status=fields.integer("status", 200, 599) or (500 if failure == "error" else 200),
        cache_control=fields.header_value("cache_control"),
        expires=fields.header_value("expires"),
        expires_in=fields.number("expires_in", 10 * 365 * 86400.0),
        set_cookie=fields.strings("set_cookie"),
        vary=fields.header_value("vary"),
        etag=_normalise_etag(fields.header_value("etag")),
        last_modified=_last_modified(fields.raw.get("last_modified")),
        body=_BODY_MODES[fields.choice("body", _BODY_MODES) or "echo"],
        body_size=fields.integer("body_size", 0, MAX_RESPONSE_BODY),
        delay=fields.number("delay", MAX_DELAY) or 0.0,
        failure=None if failure is None else _FAILURE_MODES[failure],
        headers=_extra_headers(fields.raw.get("headers", [])),
        surrogate_keys=_surrogate_keys(fields),
        surrogate_key_header=_optional_header_name(fields.raw.get("surrogate_key_header")),
        interim=_interim(fields.raw.get("interim", [])),
        connection=tuple(_check_header_name("connection", n) for n in fields.strings("connection")),
    )
    _check_consistency(rule)
    return dataclasses.replace(rule, sequence=_sequence(fields.raw))


def _interim(raw: object) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(
        isinstance(c, int) and not isinstance(c, bool) and 100 <= c <= 199 and c != 101 for c in raw
    ):
        raise RuleError("interim", "must be a list of 1xx status codes (100..199, not 101)")
    return tuple(raw)


def _sequence(raw: dict[str, object]) -> tuple[Rule, ...]:
    """Each answer of ``sequence`` is the rule's own fields with the answer's over them."""
    items = raw.get("sequence", [])
    if not isinstance(items, list):
        raise RuleError("sequence", "must be a list of answers (objects of rule fields)")
    base = {k: v for k, v in raw.items() if k != "sequence"}
    answers = []
    for index, item in enumerate(items):
        if not isinstance(item, dict) or {"path", "pattern", "sequence"} & set(item):
            raise RuleError(f"sequence[{index}]", "must be an object without path, pattern or sequence")
        try:
            answers.append(parse_rule({**base, **item}))
        except RuleError as exc:
            raise RuleError(f"sequence[{index}]", str(exc)) from exc
    return tuple(answers)


def _optional_header_name(raw: object) -> str | None:
    return None if raw is None else _check_header_name("surrogate_key_header", raw)


def _check_consistency(rule: Rule) -> None:
    if (rule.path is None) == (rule.pattern is None):
        raise RuleError(None, "exactly one of path and pattern is required")
    if rule.path is not None and not rule.path.startswith("/") and rule.path != "*":
        raise RuleError("path", "must start with /")
    if rule.failure == "error" and rule.status < 500:
        raise RuleError("status", 'failure "error" needs a 5xx status')
    if rule.expires is not None and rule.expires_in is not None:
        raise RuleError(None, "expires and expires_in are mutually exclusive")
    if rule.body == "filler" and rule.body_size is None:
        raise RuleError("body_size", 'required with body "filler"')


def parse_rules(raw: object) -> list[Rule]:
    """A rule or a list of rules; error messages are prefixed with ``rules[i].``."""
    items = raw if isinstance(raw, list) else [raw]
    rules = []
    for index, item in enumerate(items):
        try:
            rules.append(parse_rule(item))
        except RuleError as exc:
            where = f"rules[{index}]" + ("." if exc.field else ": ")
            raise RuleError(None, where + str(exc)) from exc
    return rules


def parse_http_date(value: str) -> float | None:
    """Epoch seconds of an HTTP-date, or None when it does not parse."""
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if parsed.tzinfo is None:  # "-0000" and obsolete zones: RFC 9110 dates are always GMT
        return parsed.replace(tzinfo=UTC).timestamp()
    return parsed.timestamp()
