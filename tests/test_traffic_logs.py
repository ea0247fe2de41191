"""Access logs read as requests: nginx combined, varnishncsa, JSON lines, auto-detection, gzip;
hostile lines become Malformed with their line number, never an error."""

from __future__ import annotations

import gzip
import io
from datetime import datetime
from pathlib import Path

import pytest

from cachewright.harness.traffic.entry import Entry, Malformed
from cachewright.harness.traffic.logs import MAX_LINE, Clock, Reader, entry, read

COMBINED = (
    '203.0.113.7 - - [10/Oct/2026:13:55:36 -0700] "GET /products/1?utm_source=x HTTP/1.1" 200 '
    '2326 "https://shop.example.com/" "Mozilla/5.0 (X11; Linux x86_64)"\n'
    '203.0.113.8 - frank [10/Oct/2026:13:55:37 -0700] "HEAD /static/app.css HTTP/2.0" 304 - "-" "-"\n'
)
VARNISHNCSA = (
    '192.0.2.1 - - [07/Dec/2026:10:00:00 +0000] "GET http://shop.example.com/c/shoes?page=2 '
    'HTTP/1.1" 200 512 "-" "curl/8.5.0"\n'
    '192.0.2.2 - - [07/Dec/2026:10:00:01 +0000] "GET http://-/nohost HTTP/1.0" 404 0 "-" "-"\n'
)


def entries(data: bytes | str, format: str = "auto") -> list[Entry | Malformed]:
    raw = data.encode() if isinstance(data, str) else data
    return list(read(io.BytesIO(raw), format))


def test_a_combined_line_becomes_an_entry() -> None:
    first, second = entries(COMBINED, "combined")
    when = datetime.fromisoformat("2026-10-10T13:55:36-07:00").timestamp()
    assert first == Entry(1, "GET", "/products/1?utm_source=x", None,
                          (("Referer", "https://shop.example.com/"),
                           ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")), when, 200)
    assert second == Entry(2, "HEAD", "/static/app.css", None, (), when + 1, 304)


def test_fields_appended_to_combined_are_passed_over() -> None:
    line = COMBINED.splitlines()[0] + ' "198.51.100.4, 10.0.0.1" 0.005 upstream=10.0.0.2:8000\n'
    (first,) = entries(line)
    assert isinstance(first, Entry) and first.target == "/products/1?utm_source=x"
    assert first.headers[1] == ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64)")


def test_a_varnishncsa_line_takes_its_host_from_the_url() -> None:
    first, second = entries(VARNISHNCSA, "varnishncsa")
    assert isinstance(first, Entry) and isinstance(second, Entry)
    assert (first.host, first.target, first.status) == ("shop.example.com", "/c/shoes?page=2", 200)
    assert (second.host, second.target) == (None, "/nohost")  # no Host header: "-"


def test_without_headers_referer_and_agent_are_not_kept() -> None:
    first = list(Reader(io.BytesIO(COMBINED.encode()), headers=False))[0]
    assert isinstance(first, Entry) and first.headers == ()


@pytest.mark.parametrize("text", [
    '{"method": "GET", "url": "/a?b=1", "headers": {"Cookie": "currency=eur"}, "host": "x.test", '
    '"time": 1796083200, "status": 200}',
    '{"method": "get", "target": "http://x.test/a?b=1", "headers": [["Cookie", "currency=eur"]], '
    '"time": "2026-12-01T00:00:00Z", "status": 200}',
])
def test_json_lines(text: str) -> None:
    (entry,) = entries(text + "\n", "json")
    assert entry == Entry(1, "GET", "/a?b=1", "x.test", (("Cookie", "currency=eur"),), 1796083200.0, 200)


@pytest.mark.parametrize(("text", "reason"), [
    ("[1, 2]", "not a JSON object"),
    ('{"url": "/a"}', "'method' is missing"),
    ('{"method": "GET"}', "'url' (or 'target') is missing"),
    ('{"method": "GET", "url": "ftp://x/a"}', "is neither /path nor http://host/path"),
    ('{"method": "GET", "url": "/a", "time": "yesterday"}', "'time' 'yesterday' is neither"),
    ('{"method": "GET", "url": "/a", "headers": [["A"]]}', "'headers' is neither"),
    ('{"method": "GET", "url": "/a", "status": "200"}', "'status' is not an integer"),
    ('{"method": "GET", "url": "/a"', "Expecting"),
])
def test_bad_json_lines_are_malformed(text: str, reason: str) -> None:
    ok = '{"method": "GET", "url": "/ok"}\n'
    got = entries(ok + text + "\n" + ok, "json")
    assert isinstance(got[0], Entry) and isinstance(got[2], Entry)
    assert isinstance(got[1], Malformed) and got[1].line == 2 and reason in got[1].reason, got[1]


HOSTILE = [
    ('1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET /a HTTP/1.1 200 5 "-" "-"', "unbalanced quotes"),
    ('1.2.3.4 - - [32/Oct/2026:13:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "-"', "bad time"),
    ('1.2.3.4 - - [10/Foo/2026:13:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "-"', "bad time"),
    ('1.2.3.4 - - [10/Oct/2026:25:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "-"', "bad time"),
    ('1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "\\x16\\x03\\x01" 400 150 "-" "-"',
     'is not "METHOD TARGET PROTOCOL"'),
    ('1.2.3.4 - - "GET /a HTTP/1.1" 200 5', "no [time] field"),
    ('1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET ftp://x/a HTTP/1.1" 200 5 "-" "-"',
     "neither /path nor http://host/path"),
    ("\x00\x01\x02 binary", "binary data"),
    ("1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] \"GET /\xff HTTP/1.1\" 200 5 \"-\" \"-\"", "binary data"),
]


@pytest.mark.parametrize(("line", "reason"), HOSTILE)
def test_hostile_lines_are_malformed_with_their_number(line: str, reason: str) -> None:
    good = '1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET /ok HTTP/1.1" 200 5 "-" "-"\n'
    raw = (good + line + "\n" + good).encode("latin-1")
    got = list(read(io.BytesIO(raw), "combined"))
    assert [type(g).__name__ for g in got] == ["Entry", "Malformed", "Entry"]
    assert got[1] == Malformed(2, got[1].reason) and reason in got[1].reason  # type: ignore[union-attr]
    assert got[2].line == 3


def test_a_huge_line_is_malformed_and_skipped_without_losing_the_next() -> None:
    good = '1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET /ok HTTP/1.1" 200 5 "-" "-"\n'
    huge = '1.2.3.4 - - [10/Oct/2026:13:55:36 +0000] "GET /' + "a" * (MAX_LINE * 3) + ' HTTP/1.1" 200 5\n'
    got = entries(good + huge + good + huge.rstrip("\n"))
    assert [g.line for g in got] == [1, 2, 3, 4]
    assert [type(g).__name__ for g in got] == ["Entry", "Malformed", "Entry", "Malformed"]
    assert "longer than 65536" in got[1].reason  # type: ignore[union-attr]


def test_blank_lines_are_skipped_and_numbers_count_them() -> None:
    got = entries("\n" + COMBINED + "\n\n")
    assert [g.line for g in got] == [2, 3]


@pytest.mark.parametrize(("text", "format"), [
    (COMBINED, "combined"), (VARNISHNCSA, "varnishncsa"),
    ('{"method": "GET", "url": "/a"}\n', "json"),
    ("garbage\n" * 3 + COMBINED, "combined"),  # undecidable lines first: the first readable decides
    ("garbage\n" + VARNISHNCSA, "varnishncsa"),
])
def test_auto_detects_the_format(text: str, format: str) -> None:
    reader = Reader(io.BytesIO(text.encode()))
    got = list(reader)
    assert reader.format == format
    assert any(isinstance(g, Entry) for g in got)


def test_gzip_is_read_transparently_whatever_the_name(tmp_path: Path) -> None:
    plain = entries(COMBINED + VARNISHNCSA)
    for name in ("access.log.1.gz", "rotated"):
        path = tmp_path / name
        path.write_bytes(gzip.compress((COMBINED + VARNISHNCSA).encode()))
        assert list(read(path)) == plain


def test_a_truncated_gzip_raises_eof(tmp_path: Path) -> None:
    path = tmp_path / "cut.gz"
    path.write_bytes(gzip.compress((COMBINED * 200).encode())[:-40])
    with pytest.raises(EOFError):
        list(read(path))


@pytest.mark.parametrize("stamp", ["10/Oct/2026:13:55:36 -0700", "29/Feb/2028:23:59:59 +0530",
                                   "01/Jan/1999:00:00:00 +0000", "31/Dec/2026:12:00:00 -1200"])
def test_the_clock_agrees_with_strptime(stamp: str) -> None:
    expected = datetime.strptime(stamp, "%d/%b/%Y:%H:%M:%S %z").timestamp()
    assert Clock().seconds(stamp) == expected


def test_the_fast_entry_is_an_entry() -> None:
    args = (3, "GET", "/a?b", "x.test", (("Referer", "-"),), 1.5, 200)
    fast, slow = entry(*args), Entry(*args)
    assert fast == slow and hash(fast) == hash(slow) and repr(fast) == repr(slow)
    assert type(fast) is Entry
    with pytest.raises(AttributeError):
        fast.line = 4  # type: ignore[misc]


def test_an_unknown_format_is_a_usage_error() -> None:
    from cachewright.generator.errors import UsageError

    with pytest.raises(UsageError, match="unknown log format 'apache'"):
        Reader(io.BytesIO(b""), "apache")


def test_auto_reads_a_requests_file() -> None:
    """A file of ``METHOD URL [Name: value]...`` lines (no log line among the first) is a
    requests file: ``test --replay`` and ``replay`` read either."""
    import io

    from cachewright.harness.traffic.entry import Entry as _Entry
    from cachewright.harness.traffic.logs import Reader

    text = b"# by hand\nGET /a\n\nGET http://shop.test/b?x=1 Cookie: a=1\nnonsense\n"
    reader = Reader(io.BytesIO(text))
    got = list(reader)
    assert reader.format == "requests"
    assert got[:2] == [_Entry(2, "GET", "/a"), _Entry(4, "GET", "/b?x=1", "shop.test", (("Cookie", "a=1"),))]
    assert len(got) == 3 and got[2].line == 5 and not isinstance(got[2], _Entry)
