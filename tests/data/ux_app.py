"""A small app of a user's own, for black-box tests: not the sample origin (no control port, no
echo, no request counts), just the pages a real site has.

``python tests/data/ux_app.py --port PORT`` (binds 127.0.0.1, or ``--host``; prints
``listening PORT`` when ready). Every response carries a unique ``X-Request-Id``; pages carry an ``ETag`` of their
content (``If-None-Match`` gets a 304), so their ETag is the same on every response.

| path | answer |
|---|---|
| ``/`` | home page, ETag, no Cache-Control |
| ``/about`` | ``Cache-Control: public, max-age=60`` |
| ``/blog/`` and ``/blog/<slug>`` | index and two posts (``hello``, ``caching``) with ETag; other slugs 404 |
| ``/static/app.<hash>.js`` | the one real hash only, ``max-age=31536000, immutable``; other hashes 404 |
| ``/account/`` | ``Set-Cookie: session=…``, ``Cache-Control: private`` |
| ``/api/v1/items`` | JSON by ``Accept-Language``, ``Vary: Accept-Language``, ``max-age=30``; POST 201 |
| ``/admin/`` | ``Cache-Control: no-store`` |
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

ASSET = "app.3f9a0c1d.js"
POSTS = {"hello": "Hello, world", "caching": "On caching"}
Page = tuple[int, dict[str, str], bytes]


def page(path: str, headers: dict[str, str]) -> Page:
    """Status, headers and body of a GET for ``path``."""
    if path == "/":
        return 200, {"Content-Type": "text/html"}, b"<h1>Home</h1>"
    if path == "/about":
        return 200, {"Content-Type": "text/html", "Cache-Control": "public, max-age=60"}, b"<h1>About</h1>"
    if path == "/blog/":
        return 200, {"Content-Type": "text/html"}, ", ".join(POSTS).encode()
    if path.startswith("/blog/") and path[6:] in POSTS:
        return 200, {"Content-Type": "text/html"}, f"<h1>{POSTS[path[6:]]}</h1>".encode()
    if path == f"/static/{ASSET}":
        return 200, {"Content-Type": "text/javascript",
                     "Cache-Control": "public, max-age=31536000, immutable"}, b"console.log(1);"
    if path == "/account/":
        session = uuid.uuid4().hex
        return 200, {"Content-Type": "text/html", "Cache-Control": "private",
                     "Set-Cookie": f"session={session}; Path=/; HttpOnly"}, f"account {session}".encode()
    if path == "/api/v1/items":
        language = (headers.get("accept-language") or "en").split(",")[0]
        body = json.dumps({"language": language, "items": [1, 2, 3]}).encode()
        return 200, {"Content-Type": "application/json", "Cache-Control": "max-age=30",
                     "Vary": "Accept-Language"}, body
    if path == "/admin/":
        return 200, {"Content-Type": "text/html", "Cache-Control": "no-store"}, b"<h1>Admin</h1>"
    return 404, {"Content-Type": "text/plain"}, b"not found"


class Handler(BaseHTTPRequestHandler):
    """GET and HEAD for every page; POST for the API; 405 otherwise."""

    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        status, headers, body = page(urlsplit(self.path).path, {k.lower(): v for k, v in self.headers.items()})
        if status == 200 and "Set-Cookie" not in headers:
            etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
            headers["ETag"] = etag
            if self.headers.get("If-None-Match") == etag:
                status, body = 304, b""
        self.answer(status, headers, body)

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if urlsplit(self.path).path == "/api/v1/items":
            self.answer(201, {"Content-Type": "application/json"}, b'{"created": true}')
        else:
            self.answer(405, {"Allow": "GET, HEAD"}, b"")

    def answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in {**headers, "X-Request-Id": uuid.uuid4().hex}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Quiet: the tests read the engines' evidence, not this log."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1", help="0.0.0.0 in a container")
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), Handler)
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    sys.exit(0)


if __name__ == "__main__":
    main()
