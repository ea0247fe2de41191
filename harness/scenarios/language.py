"""The scenario file format: the schema a scenario file is validated against."""

from __future__ import annotations

from typing import Final

from cachewright.generator.language import ADDRESS, COOKIE_NAME, HEADER_NAME, HOSTNAME, NAME
from cachewright.generator.spec import Duration, Enum, Field, Int, ListOf, MapOf, Obj, Str
from cachewright.generator.targets import ENGINES

CACHE_OUTCOMES: Final = ("hit", "miss", "bypass", "stale")


def _check_target(value: str) -> str | None:
    if value == "*" or value.startswith(("/", "http://", "https://")):
        return None
    return f'"{value[:60]}" is not a request target (expected /path?query, http://host/path or *)'


TARGET = Str(r"\S+", "a request target without spaces, such as /products/{run}?page=2", 8192,
             _check_target)
ORIGIN_PATH = Str(r"[/*]\S*", "a path starting with /, such as /products/{run}", 2048)
GLOB = Str(r"[/*]\S*", "a glob on the path, such as /api/* (* also matches /)", 2048)
VALUE = Str(None, "a header value", 4096)
TEXT = Str(None, "a single line of text", 65536)
HOST = Str(HOSTNAME.replace(r"(?:\*\.)?", "") + r"(?::[0-9]{1,5})?",
           "a lowercase host name, optionally with :port", 260)
METHOD = Str(r"[A-Z][A-Z0-9_-]{0,31}", "an uppercase method name such as GET or PURGE", 32)
TAG = Str(r"[a-z0-9][a-z0-9_.-]{0,62}", "a lowercase tag such as smoke", 63)
SURROGATE_KEY = Str(r"[!-~]+", "a surrogate key without spaces", 256)

ORIGIN_RULE = Obj("origin rule", {
    "path": Field(ORIGIN_PATH, "Exact path the rule answers (query ignored).", None),
    "pattern": Field(GLOB, "Glob the rule answers; the last pattern registered wins.", None),
    "status": Field(Int(200, 599), "Response status (default 200; 500 with failure: error).", None),
    "cache_control": Field(VALUE, "Cache-Control of the response.", None),
    "expires_in": Field(Duration(), "Expires this long after the response.", None),
    "set_cookie": Field(ListOf(VALUE, unique=False, one_or_many=True), "Set-Cookie value(s).", ()),
    "vary": Field(VALUE, "Vary of the response.", None),
    "etag": Field(VALUE, "ETag (quoted automatically); conditional requests get 304.", None),
    "last_modified": Field(VALUE, "Last-Modified HTTP-date.", None),
    "body": Field(Enum(("echo", "filler")), "echo (JSON of the request) or filler bytes.", None),
    "body_size": Field(Int(0, 256 * 1024 * 1024), "Body size in bytes (needed for filler).", None),
    "delay": Field(Duration(maximum=3600), "Wait this long before answering.", None),
    "failure": Field(Enum(("error", "refuse", "close_mid_body")), "Fail instead of answering.",
                     None),
    "headers": Field(MapOf(HEADER_NAME, VALUE), "Extra response headers.", ()),
    "surrogate_keys": Field(ListOf(SURROGATE_KEY, one_or_many=True), "Surrogate-Key values.", ()),
}, "How the sample origin answers one path or pattern during the scenario.")

HEADER_EXPECTATIONS = Obj("header expectations", {
    "present": Field(ListOf(HEADER_NAME), "Headers the response must have.", ()),
    "absent": Field(ListOf(HEADER_NAME), "Headers the response must not have.", ()),
    "equal": Field(MapOf(HEADER_NAME, VALUE), "Headers that must have exactly this value.", ()),
    "contains": Field(MapOf(HEADER_NAME, ListOf(VALUE, one_or_many=True)),
                      "Headers whose value must contain this text (or each text of a list).", ()),
}, "Expectations on response headers.")

COOKIE_EXPECTATIONS = Obj("cookie expectations", {
    "present": Field(ListOf(COOKIE_NAME), "Cookies the origin must have received.", ()),
    "absent": Field(ListOf(COOKIE_NAME), "Cookies the origin must not have received.", ()),
    "equal": Field(MapOf(COOKIE_NAME, VALUE), "Cookies it must have received with this value.", ()),
}, "Expectations on the cookies the origin received.")

RECEIVED = Obj("origin received", {
    "headers": Field(HEADER_EXPECTATIONS, "Headers of the request the origin received.", None),
    "cookies": Field(COOKIE_EXPECTATIONS, "Cookies of the request the origin received.", None),
}, "What the sample origin received for this step's request (it must have received one).")

EXPECT = Obj("expectations", {
    "status": Field(ListOf(Int(100, 599), one_or_many=True), "Response status (or one of a list).",
                    ()),
    "cache": Field(ListOf(Enum(CACHE_OUTCOMES), one_or_many=True),
                   "Cache-Status outcome: hit, miss, bypass, stale (or one of a list).", ()),
    "rule": Field(NAME, "The rule named in Cache-Status (detail=).", None),
    "origin_delta": Field(Int(0, 100000), "Requests the origin received for this step's path.",
                          None),
    "origin_total_delta": Field(Int(0, 100000), "Requests the origin received in all.", None),
    "same_response_as": Field(NAME, "An earlier step whose response this is (same response "
                              "identity: X-Response-Id with the sample origin).", None),
    "different_response_from": Field(NAME, "An earlier step whose response this is not.", None),
    "headers": Field(HEADER_EXPECTATIONS, "Response header expectations.", None),
    "origin_received": Field(RECEIVED, "What the sample origin received for this step.", None),
}, "What the response and the origin's counts must show.")

STEP = Obj("step", {
    "name": Field(NAME, "Step name, for messages and same_response_as.", None),
    "wait": Field(Duration(maximum=600), "Pause this long (a wait step has nothing else).", None),
    "method": Field(METHOD, "Request method (default GET).", None),
    "path": Field(TARGET, "Raw request target, sent as written.", None),
    "headers": Field(MapOf(HEADER_NAME, VALUE), "Request headers.", ()),
    "cookies": Field(MapOf(COOKIE_NAME, VALUE), "Cookies, sent as one Cookie header.", ()),
    "scheme": Field(Enum(("http", "https")), "http (default) or https.", None),
    "host": Field(HOST, "Host header (default: the policy's first listen host).", None),
    "body": Field(TEXT, "Request body.", None),
    "from": Field(ADDRESS, "Source address to send from (e.g. 127.0.0.2).", None),
    "expect": Field(EXPECT, "Expectations.", None),
}, "One request with its expectations, or a wait.")

SCENARIO = Obj("scenario", {
    "name": Field(NAME, "Unique scenario name; the check id is scenario:<name>."),
    "description": Field(Str(None, "a one-line description", 500), "What the scenario proves.", ""),
    "engines": Field(ListOf(Enum(ENGINES), min_items=1), "Engines it runs on (default: all).",
                     ENGINES),
    "tags": Field(ListOf(TAG), "Tags added to the results.", ()),
    "origin": Field(ListOf(ORIGIN_RULE, unique=False), "Sample-origin rules for the scenario.", ()),
    "steps": Field(ListOf(STEP, min_items=1, unique=False), "Requests and waits, in order."),
}, "A named sequence of requests with expectations.")

SCENARIO_FILE = Obj("scenario file", {
    "version": Field(Int(1, 1), "Scenario format version; must be 1.", 1),
    "scenarios": Field(ListOf(SCENARIO, min_items=1, unique=False), "The scenarios."),
}, "A cachewright scenario file.")

_REQUEST_KEYS: Final = ("method", "path", "headers", "cookies", "scheme", "host", "body", "from",
                        "expect")
