"""Access logs read as requests: ``read(path_or_stream, format)`` yields one ``Entry`` per
request line and one ``Malformed`` per line it cannot read (never fatal), streaming: one line
in memory at a time, however long the log.

Formats (``FORMATS``):

* ``combined`` — nginx's ``log_format combined``: ``$remote_addr - $remote_user [$time_local]
  "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent"``. ``$request`` is the
  request line as sent: an origin-form target (``/path?q``) says no host (the policy's first
  host is used); an absolute-form one (``http://host/path``) names it.
* ``varnishncsa`` — varnishncsa's default, ``%h %l %u %t "%r" %s %b "%{Referer}i"
  "%{User-agent}i"``, whose ``%r`` is ``%m http://%{Host}i%U%q %H``: the host comes from the URL
  (``-`` when the request had no Host header).
* ``json`` — one object a line: ``method``; ``url`` or ``target`` (origin- or absolute-form);
  optional ``host``, ``headers`` (an object, or a list of ``[name, value]`` pairs), ``time``
  (seconds since the epoch, or ISO 8601) and ``status``.
* ``requests`` — a requests file written by hand (``requests_file``): ``METHOD URL [Name:
  value]...`` a line, ``#`` comments; no times.

``auto`` decides per file from its first readable lines. A gzip file (rotated logs usually are)
is read through ``gzip`` whatever its name, recognised by its magic bytes. Lines longer than
``MAX_LINE`` characters are Malformed and skipped without being held whole.
"""

from __future__ import annotations

import calendar
import gzip
import io
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import chain, islice
from pathlib import Path
from typing import IO, Any

from cachewright.generator.errors import UsageError

from .entry import Entry, Malformed
from .requests_file import parse_line

FORMATS = ("combined", "varnishncsa", "json", "requests")
MAX_LINE = 64 * 1024
DETECT_LINES = 20  # auto: the first readable lines looked at
OVERLONG = "\x00overlong"  # stands for a line over MAX_LINE (its text is not kept)
#: what no field may hold: control characters, and bytes that are not UTF-8 (kept as surrogates)
_BAD = r"\x00-\x1f\x7f\udc80-\udcff"
_TOKEN = rf"[^ {_BAD}]+"
_QUOTED = rf'"([^"\\{_BAD}]*(?:\\[^{_BAD}][^"\\{_BAD}]*)*)"'
#: the shared shape of combined and varnishncsa lines (both NCSA "combined"): groups time,
#: method, target, status, referer, user agent (the last two optional, as in "common"; fields
#: a site appends after them, such as "$http_x_forwarded_for" or $request_time, are passed over)
CLF = re.compile(
    rf"{_TOKEN} {_TOKEN} [^{_BAD}]*? \[([^\]]{{26}})\] "
    rf'"([A-Za-z]+) ([^ "{_BAD}]+)(?: [^ "{_BAD}]*)?" ([0-9]{{3}}) (?:[0-9]+|-)'
    rf"(?: {_QUOTED} {_QUOTED}(?: [^{_BAD}]*)?)?[ \t\r]*\n?\Z")
ABSOLUTE = re.compile(r"(?i)https?://([^/?#]*)(.*)\Z")
MONTHS = {m: i for i, m in enumerate(("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug",
                                      "Sep", "Oct", "Nov", "Dec"), start=1)}


def read(source: str | Path | IO[bytes], format: str = "auto") -> Iterator[Entry | Malformed]:
    """The log's requests in order, a ``Malformed`` for each line that is not one. ``source`` is
    a path or a binary stream (gzip or plain; it is read to its end and closed). Raises
    ``UsageError`` for an unknown format, ``OSError`` when the file cannot be read, and
    ``EOFError`` or ``zlib.error`` for a damaged gzip stream."""
    return iter(Reader(source, format))


class Reader:
    """A log as an iterable of ``Entry`` and ``Malformed``; ``format`` is the one ``auto``
    decided once iteration has begun. Without ``headers``, the Referer and User-Agent of
    combined and varnishncsa lines are not kept (a reader that never looks at them saves time)."""

    def __init__(self, source: str | Path | IO[bytes], format: str = "auto", *,
                 headers: bool = True) -> None:
        if format not in (*FORMATS, "auto"):
            raise UsageError(f"unknown log format {format!r} (one of: auto, {', '.join(FORMATS)})")
        self.source = source
        self.format = format
        self.headers = headers

    def __iter__(self) -> Iterator[Entry | Malformed]:
        with _text(self.source) as stream:
            lines = numbered(stream)
            if self.format == "auto":
                head = list(islice(lines, DETECT_LINES))
                self.format = detect(text for _, text in head)
                lines = chain(head, lines)
            yield from PARSERS[self.format](lines, self.headers)


@contextmanager
def _text(source: str | Path | IO[bytes]) -> Iterator[IO[str]]:
    """``source`` as text (UTF-8; bytes that are not are kept as surrogates, which make a line
    Malformed), gunzipped when it starts with gzip's magic bytes."""
    opened = open(source, "rb") if isinstance(source, (str, Path)) else None
    try:
        raw: IO[bytes] = opened or source  # type: ignore[assignment]
        buffered = raw if isinstance(raw, io.BufferedReader) else io.BufferedReader(raw)  # type: ignore[type-var]
        binary = gzip.GzipFile(fileobj=buffered) if buffered.peek(2)[:2] == b"\x1f\x8b" else buffered
        yield io.TextIOWrapper(binary, encoding="utf-8", errors="surrogateescape", newline="\n")
    finally:
        if opened is not None:
            opened.close()


def numbered(stream: IO[str]) -> Iterator[tuple[int, str]]:
    """(line number, text) for each line; a line over ``MAX_LINE`` characters is given as
    ``OVERLONG`` (which the parsers report) and the rest of it is skipped, never held whole."""
    readline = stream.readline
    number = 0
    while True:
        line = readline(MAX_LINE)
        if not line:
            return
        number += 1
        if len(line) >= MAX_LINE and not line.endswith("\n"):
            while (rest := readline(MAX_LINE)) and not rest.endswith("\n"):
                pass
            line = OVERLONG
        yield number, line


def detect(lines: Iterable[str]) -> str:
    """The format of the first readable lines: ``json`` when they are objects, ``varnishncsa``
    when their requests carry absolute URLs, ``combined`` for origin-form ones, ``requests``
    when none is a log line but one reads as ``METHOD URL``; else ``combined``."""
    requests = False
    for line in lines:
        text = line.strip()
        if text.startswith("{"):
            return "json"
        found = CLF.match(line)
        if found:
            return "varnishncsa" if ABSOLUTE.match(found.group(3)) else "combined"
        if text and not text.startswith("#"):
            requests = requests or isinstance(parse_line(text, 0), Entry)
    return "requests" if requests else "combined"


def parse_requests(lines: Iterable[tuple[int, str]], headers: bool = True) -> Iterator[Entry | Malformed]:
    """A requests file's lines (blank ones and ``#`` comments skipped)."""
    for number, line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            yield parse_line(text, number)


def reason(line: str) -> str:
    """Why a line is not a combined/varnishncsa request line (for ``Malformed``)."""
    if line == OVERLONG:
        return f"line longer than {MAX_LINE} characters"
    if re.search(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\udc80-\udcff]", line):
        return "binary data (control characters or bytes that are not UTF-8)"
    if line.count('"') % 2:
        return "unbalanced quotes"
    request = re.search(r'\] "([^"]*)"', line)
    if re.search(r"\[[^\]]*\]", line) is None:
        return "no [time] field"
    if request is None:
        return 'no "request" field after the time'
    if not re.fullmatch(r"[A-Za-z]+ [^ ]+(?: [^ ]*)?", request.group(1)):
        return f'request {request.group(1)[:60]!r} is not "METHOD TARGET PROTOCOL"'
    return ('not a combined/varnishncsa line (expected: host ident user [time] "request" status '
            'bytes "referer" "user-agent")')


def parse_clf(lines: Iterable[tuple[int, str]], headers: bool = True) -> Iterator[Entry | Malformed]:
    """combined and varnishncsa lines (one shape; an absolute URL names the host). Without
    ``headers`` the Referer and User-Agent are not kept (nothing downstream reads them)."""
    match, clock = CLF.match, Clock()
    last_when, last_seconds = "", None
    for number, line in lines:
        found = match(line)
        if found is None:
            if line.strip():
                yield Malformed(number, reason(line))
            continue
        when, method, target, status, referer, agent = found.groups()
        if when != last_when:  # busy logs repeat a second on many lines
            last_when, last_seconds = when, clock.seconds(when)
        if last_seconds is None:
            yield Malformed(number, f"bad time [{when}] (expected [10/Oct/2000:13:55:36 -0700])")
            continue
        host = None
        if target[0] != "/":
            split = absolute(target)
            if split is None:
                yield Malformed(number, f"request target {target[:60]!r} is neither /path nor http://host/path")
                continue
            host, target = split
        pairs = _clf_headers(referer, agent) if headers and (referer or agent) else ()
        yield entry(number, method.upper(), target, host, pairs, last_seconds, int(status))


def absolute(target: str) -> tuple[str | None, str] | None:
    """(host, origin-form target) of ``http://host/path`` (None: not one). A host of ``-``
    (varnishncsa without a Host header) is None."""
    url = ABSOLUTE.match(target)
    if url is None or not url.group(1):
        return None
    return (None if url.group(1) == "-" else url.group(1)), url.group(2) or "/"


def entry(line: int, method: str, target: str, host: str | None, headers: tuple[tuple[str, str], ...],
          time: float | None, status: int | None) -> Entry:
    """``Entry(...)``, built faster: a frozen dataclass's ``__init__`` sets each field through
    ``object.__setattr__``; this fills the new instance's dict directly (the same object, equal
    and hashed alike, 2.5 times faster: a tenth of reading a line; tests/test_traffic_logs.py)."""
    made = _new(Entry)
    made.__dict__.update(line=line, method=method, target=target, host=host, headers=headers,
                         time=time, status=status)
    return made


_new = object.__new__


def _clf_headers(referer: str | None, agent: str | None) -> tuple[tuple[str, str], ...]:
    out = (("Referer", referer),) if referer and referer != "-" else ()
    return out + ((("User-Agent", agent),) if agent and agent != "-" else ())


class Clock:
    """``10/Oct/2000:13:55:36 -0700`` in seconds since the epoch; a day's start is computed once
    per day and zone (a log has few), the rest is arithmetic."""

    def __init__(self) -> None:
        self.days: dict[str, int | None] = {}

    def seconds(self, text: str) -> float | None:
        day = text[:11] + text[20:]
        start = self.days[day] if day in self.days else self.days.setdefault(day, _day_start(text))
        if start is None or text[11] != ":" or text[14] != ":" or text[17] != ":":
            return None
        try:
            h, m, s = int(text[12:14]), int(text[15:17]), int(text[18:20])
        except ValueError:
            return None
        if h > 23 or m > 59 or s > 60:
            return None
        return float(start + h * 3600 + m * 60 + s)


def _day_start(text: str) -> int | None:
    """Seconds since the epoch at 00:00:00 of ``10/Oct/2000:... -0700``'s day in its zone."""
    found = re.fullmatch(r"([0-9]{2})/([A-Z][a-z]{2})/([0-9]{4}):.{8} ([+-])([0-9]{2})([0-9]{2})", text)
    if found is None or found.group(2) not in MONTHS:
        return None
    day, month, year = int(found.group(1)), MONTHS[found.group(2)], int(found.group(3))
    if not 1 <= day <= calendar.monthrange(year, month)[1]:
        return None
    offset = (int(found.group(5)) * 3600 + int(found.group(6)) * 60) * (1 if found.group(4) == "+" else -1)
    return calendar.timegm((year, month, day, 0, 0, 0)) - offset


def parse_json(lines: Iterable[tuple[int, str]], headers: bool = True) -> Iterator[Entry | Malformed]:
    """JSON lines: one request object a line (``headers``: always kept, a JSON line names
    only the headers its writer chose)."""
    for number, line in lines:
        if line == OVERLONG:
            yield Malformed(number, f"line longer than {MAX_LINE} characters")
        elif line.strip():
            try:
                yield json_entry(number, json.loads(line))
            except ValueError as exc:  # json's errors, and a field of the wrong kind
                yield Malformed(number, str(exc)[:200])
            except RecursionError:
                yield Malformed(number, "JSON nested too deeply")


def json_entry(number: int, obj: Any) -> Entry:
    """An ``Entry`` from one decoded JSON line; ValueError (the reason) when it is not one."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    method, target = obj.get("method"), obj.get("url", obj.get("target"))
    if not isinstance(method, str) or not re.fullmatch(r"[A-Za-z]+", method):
        raise ValueError("'method' is missing or not a method name")
    if not isinstance(target, str) or not target or re.search(r"[\x00-\x20\x7f]", target):
        raise ValueError("'url' (or 'target') is missing or not a request target")
    host = obj.get("host")
    if host is not None and not isinstance(host, str):
        raise ValueError("'host' is not a string")
    if target[0] != "/":
        split = absolute(target)
        if split is None:
            raise ValueError(f"'url' {target[:60]!r} is neither /path nor http://host/path")
        host, target = host or split[0], split[1]
    status = obj.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int)):
        raise ValueError("'status' is not an integer")
    return Entry(number, method.upper(), target, host, _json_headers(obj.get("headers")),
                 _json_time(obj.get("time")), status)


def _json_headers(value: Any) -> tuple[tuple[str, str], ...]:
    if value is None:
        return ()
    pairs = list(value.items()) if isinstance(value, dict) else value
    if not isinstance(pairs, list) or not all(
            isinstance(p, (list, tuple)) and len(p) == 2 and isinstance(p[0], str)
            and isinstance(p[1], str) for p in pairs):
        raise ValueError("'headers' is neither an object of strings nor a list of [name, value] pairs")
    return tuple((name, value) for name, value in pairs)


def _json_time(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
            return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
        except ValueError:
            pass
    raise ValueError(f"'time' {str(value)[:40]!r} is neither seconds since the epoch nor ISO 8601")


PARSERS = {"combined": parse_clf, "varnishncsa": parse_clf, "json": parse_json,
           "requests": parse_requests}
