"""https origins: the policy fields, what nginx is given, Varnish's refusal, and on the real
nginx a fetch over TLS to a TLS front of the sample origin that records what each handshake sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import pytest

from cachewright.generator.errors import CapabilityError, PolicyError
from cachewright.generator.load import loads
from cachewright.generator.model import Policy
from cachewright.generator.pipeline import Options, compile_policy
from cachewright.generator.render import OutputFile
from cachewright.harness.client import Client
from cachewright.harness.engines.verify import verify
from cachewright.harness.origin import OriginClient
from cachewright.harness.runtime.api import Stack
from cachewright.harness.runtime.local import LocalRuntime
from cachewright.harness.runtime.prepare import Placement, generated, request_host
from cachewright.harness.runtime.tlsfiles import TlsFiles, write_tls_files

HEAD = "version: 1\nname: tlsorigin\n"
RULES = """rules:
  - name: static
    match: {path_prefix: /static/}
    ttl: 1h
    origin_headers: override
"""


def _policy(origin: str, tail: str = "") -> Policy:
    return loads(HEAD + origin + RULES + tail, "p.yaml")


def _nginx_conf(policy: Policy) -> str:
    (conf,) = [f.text for f in compile_policy(policy, ("nginx",)).files if f.path.endswith(".conf")]
    return conf


# --------------------------------------------------------------------------- compiling


def test_an_https_origin_gets_sni_verification_and_explicit_protocols() -> None:
    conf = _nginx_conf(_policy("origin: {url: 'https://app.example.com:8443', "
                               "host_header: shop.example.com}\n"))
    assert "        server app.example.com:8443 max_fails=3 fail_timeout=10s;\n" in conf
    block = "\n".join([
        '    proxy_ssl_server_name on;',
        # the upstream block's name (nginx's default for both) is not the origin's, and the
        # name checked is the URL's host, not host_header
        '    proxy_ssl_name "app.example.com";',
        '    proxy_ssl_protocols TLSv1.2 TLSv1.3;',
        '    proxy_ssl_verify on;',
        '    proxy_ssl_verify_depth 3;',
        '    proxy_ssl_trusted_certificate "/etc/ssl/certs/ca-certificates.crt";'])
    assert block in conf
    assert "    proxy_ssl_session_reuse on;\n" in conf
    assert conf.count("proxy_pass https://cw_origin;") == 2  # static and default
    assert "http://cw_origin" not in conf


def test_the_default_port_of_https_is_443() -> None:
    assert "server app.example.com:443 " in _nginx_conf(_policy("origin: {url: 'https://app.example.com'}\n"))


def test_a_plain_origin_gets_no_tls_directive() -> None:
    conf = _nginx_conf(_policy("origin: {url: 'http://app:8000'}\n"))
    assert "proxy_ssl" not in conf
    assert "proxy_pass http://cw_origin;" in conf


def test_the_policy_names_the_ca_the_server_name_and_the_protocols(tmp_path: Path) -> None:
    tls = write_tls_files(tmp_path, ["origin.test"])
    policy = loads(HEAD + f"origin:\n  url: [https://10.0.0.1, https://10.0.0.2:8443]\n  tls:\n"
                   f"    ca: {tls.ca.name}\n    server_name: origin.test\n"
                   f"    protocols: [TLSv1.3]\n    verify_depth: 1\n", str(tmp_path / "p.yaml"))
    conf = _nginx_conf(policy)
    for line in ('proxy_ssl_name "origin.test";', "proxy_ssl_protocols TLSv1.3;",
                 "proxy_ssl_verify_depth 1;", 'proxy_ssl_trusted_certificate "ca.pem";',
                 "server 10.0.0.1:443 ", "server 10.0.0.2:8443 "):
        assert line in conf


def test_turning_verification_off_is_explicit_and_warned() -> None:
    policy = _policy("origin: {url: 'https://app.example.com', tls: {verify: false}}\n")
    compiled = compile_policy(policy, ("nginx",))
    conf = compiled.files[0].text
    assert "    proxy_ssl_verify off;\n" in conf
    assert "proxy_ssl_trusted_certificate" not in conf
    assert compiled.warnings == (
        "p.yaml:3:48: origin.tls.verify: warning: nginx accepts any certificate from the origin "
        "(proxy_ssl_verify off): anyone on the path to it can read and change what is cached",)


VARNISH_REFUSAL = (
    "p.yaml:3:10: origin.url: TLS to the origin (https:// origin URLs) (origin.https) is "
    "unsupported on varnish: open-source Varnish has no TLS to backends (alternative: a TLS "
    "client sidecar beside varnishd (stunnel4 in client mode, or nginx's proxy_pass https://) "
    "that verifies the origin, with origin.url pointing Varnish at it as "
    "http://127.0.0.1:PORT; or compile with --target nginx; accept_missing cannot waive it: "
    "the output would be less safe, not lacking)")


@pytest.mark.parametrize("tail", ["", "accept_missing: {varnish: [origin.https]}\n"])
def test_varnish_refuses_an_https_origin_even_when_accepted(tail: str) -> None:
    policy = _policy("origin: {url: 'https://app.example.com'}\n", tail)
    with pytest.raises(CapabilityError) as info:
        compile_policy(policy, ("varnish",))
    assert str(info.value) == VARNISH_REFUSAL


def test_the_harness_does_not_hide_an_https_origin_from_varnish() -> None:
    """The harness's sample origin speaks plain HTTP, so adapting the policy to it drops TLS:
    the capability check still reads the policy as written."""
    policy = _policy("origin: {url: 'https://app.example.com'}\n")
    place = Placement("127.0.0.1", 8080, 8443, "127.0.0.1", 9000)
    with pytest.raises(CapabilityError):
        generated(policy, "varnish", place, Options())
    conf = generated(policy, "nginx", place, Options())["nginx.conf"].text
    assert "proxy_pass http://cw_origin;" in conf and "proxy_ssl" not in conf


@pytest.mark.parametrize(("origin", "expected"), [
    ("origin: {url: 'ftp://app'}\n",
     'p.yaml:3:15: origin.url: "ftp://app": scheme "ftp" is not supported (expected '
     'http://host[:port] or https://host[:port], e.g. http://app:8000)'),
    ("origin: {url: 'https://app/v1'}\n",
     'p.yaml:3:15: origin.url: "https://app/v1" has a path or query ("/v1"); an origin URL names '
     'a server only (requests keep their own path; expected http://host[:port] or '
     'https://host[:port], e.g. http://app:8000)'),
    ("origin: {url: ['https://a.example', 'http://b.example']}\n",
     "p.yaml:3:37: origin.url[1]: is http while origin.url[0] is https (expected every origin URL "
     "with the same scheme: the cache speaks one protocol to its origin servers)"),
    ("origin: {url: 'http://app', tls: {verify: true}}\n",
     "p.yaml:3:29: origin.tls: applies to https origins only (origin.url is http://...; write "
     "https://host[:port] or remove origin.tls)"),
    ("origin: {url: ['https://a.example', 'https://b.example']}\n",
     "p.yaml:3:10: origin.url: https servers with different host names (a.example, b.example): "
     "nginx sends and verifies one name for all of them (expected origin.tls.server_name: the "
     "name their certificates share)"),
    ("origin: {url: 'https://10.0.0.5'}\n",
     "p.yaml:3:10: origin.url: 10.0.0.5 is an IP address: no SNI is sent for an address and the "
     "certificate is checked by name (expected origin.tls.server_name: the name in the origin's "
     "certificate)"),
    ("origin: {url: 'https://app', tls: {ca: missing-ca.pem}}\n",
     "p.yaml:3:36: origin.tls.ca: cannot read missing-ca.pem (No such file or directory; a "
     "relative path is read beside the policy file)"),
    ("origin: {url: 'https://app', tls: {ca: /etc/hostname}}\n",
     "p.yaml:3:36: origin.tls.ca: /etc/hostname holds no PEM certificate (expected -----BEGIN "
     "CERTIFICATE----- blocks)"),
    ("origin: {url: 'https://app', tls: {verify: false, ca: /etc/ssl/certs/ca-certificates.crt}}\n",
     "p.yaml:3:51: origin.tls.ca: has no effect with verify: false (remove one of them)"),
    ("origin: {url: 'https://app', tls: {protocols: [TLSv1]}}\n",
     'p.yaml:3:48: origin.tls.protocols[0]: "TLSv1" is not one of: TLSv1.2, TLSv1.3'),
])
def test_bad_https_origins_are_load_errors(origin: str, expected: str) -> None:
    with pytest.raises(PolicyError) as info:
        _policy(origin)
    assert str(info.value).splitlines()[0] == expected



@pytest.mark.engine
def test_nginx_accepts_a_ca_file_named_beside_the_policy(tmp_path: Path) -> None:
    """nginx -t loads the trusted certificates: verify copies a relative CA file from beside the
    policy, as it does the listener's certificate."""
    write_tls_files(tmp_path / "certs", ["origin.test"])
    policy = loads(HEAD + "origin:\n  url: https://127.0.0.1:8443\n  tls: {ca: certs/ca.pem, "
                   "server_name: origin.test}\n" + RULES, str(tmp_path / "p.yaml"))
    (done,) = verify(compile_policy(policy, ("nginx",)).files, tmp_path)
    assert done.engine == "nginx"


# --------------------------------------------------------------------------- on the real nginx


@dataclass
class Handshake:
    server_name: str | None
    version: str | None
    reused: bool


@dataclass
class TlsFront:
    """A TLS terminator in front of a plain-HTTP origin, on a private event loop in a thread.
    It records, per accepted connection, the SNI the client sent, the TLS version and whether
    the session was resumed."""

    files: TlsFiles
    handshakes: list[Handshake] = field(default_factory=list)
    port: int = 0
    upstream: tuple[str, int] = ("127.0.0.1", 0)
    _names: list[str | None] = field(default_factory=list)
    _loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.new_event_loop)
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None

    def start(self, upstream: tuple[str, int]) -> int:
        self.upstream = upstream
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.files.cert, self.files.key)
        context.sni_callback = lambda _obj, name, _ctx: self._names.append(name)
        self._loop.set_exception_handler(lambda _loop, _ctx: None)  # refused handshakes: expected
        self._server = self._loop.run_until_complete(
            asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=context))
        self.port = self._server.sockets[0].getsockname()[1]
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        return self.port

    def stop(self) -> None:
        """Close the listener and every connection, end the loop's thread, close the loop."""
        if self._thread is not None:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
        self._loop.close()

    async def _shutdown(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls = writer.get_extra_info("ssl_object")
        self.handshakes.append(Handshake(self._names[-1] if self._names else None,
                                         tls.version(), tls.session_reused))
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        try:
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
        finally:
            up_writer.close()
            writer.close()

    def configs(self, policy: Policy, engine: str, place: Placement,
                options: Options) -> dict[str, OutputFile]:
        """The compiler's files with the origin at this front (started on first use, in front
        of the run's sample origin) and the policy's own TLS settings and name."""
        if not self.port:
            self.start((place.origin_host, place.origin_port))
        tls = policy.origin.tls
        assert tls is not None
        origin_tls = replace(tls, server_name=policy.origin.tls_name)
        front = replace(place, origin_host="127.0.0.1", origin_port=self.port, origin_tls=origin_tls)
        return generated(policy, engine, front, options)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()



@contextlib.contextmanager
def _nginx_before_front(tmp_path: Path, front_files: TlsFiles, tls: str
                        ) -> Iterator[tuple[Stack, TlsFront, Client]]:
    """nginx running the policy with ``origin.tls: {tls}``, its origin a TLS front (serving
    ``front_files``' certificate) of the run's sample origin."""
    policy = loads(HEAD + "origin:\n  url: https://origin.test:8443\n  tls: {" + tls + "}\n"
                   + RULES, str(tmp_path / "p.yaml"))
    front = TlsFront(front_files)
    try:
        with LocalRuntime(configs=front.configs).start(policy, ("nginx",)) as stack:
            yield stack, front, Client(stack.endpoints["nginx"], request_host(policy), stack.ca_file)
    finally:
        front.stop()


@pytest.mark.engine
def test_nginx_fetches_over_tls_with_sni_and_a_verified_certificate(tmp_path: Path) -> None:
    files = write_tls_files(tmp_path / "origin", ["origin.test"])
    with _nginx_before_front(tmp_path, files, f"ca: {files.ca}") as (stack, front, client):
        miss = client.request("GET", "/static/a.css")
        time.sleep(0.3)  # let nginx store the miss before the hit
        hit = client.request("GET", "/static/a.css")
        others = [client.request("GET", f"/static/{n}.css") for n in range(5)]
        with OriginClient(stack.origin.control_url) as origin:
            fetched = origin.count("/static/a.css", "GET")
    assert (miss.status, miss.cache.outcome, hit.status, hit.cache.outcome) == (200, "miss", 200, "hit")
    assert miss.response_id is not None and hit.response_id == miss.response_id
    assert fetched == 1
    assert all(r.status == 200 and r.cache.outcome == "miss" for r in others), [r.summary() for r in others]
    # every handshake named the policy's origin host (not the upstream block, not the client's
    # Host), and six fetches rode on at most one kept-alive connection per nginx worker (2 cores)
    assert front.handshakes, "nginx never connected to the TLS front"
    assert {(h.server_name, h.version) for h in front.handshakes} == {("origin.test", "TLSv1.3")}
    assert len(front.handshakes) <= 2, front.handshakes


@pytest.mark.engine
@pytest.mark.parametrize(("tls", "logged"), [
    ("ca: {other_ca}", "upstream SSL certificate verify error: (21:unable to verify the first certificate)"),
    ("ca: {ca}, server_name: other.test", 'upstream SSL certificate does not match "other.test"'),
], ids=["wrong-ca", "wrong-name"])
def test_an_origin_certificate_nginx_cannot_verify_is_a_502(tmp_path: Path, tls: str, logged: str) -> None:
    files = write_tls_files(tmp_path / "origin", ["origin.test"])
    other = write_tls_files(tmp_path / "other", ["origin.test"])
    with _nginx_before_front(tmp_path, files, tls.format(ca=files.ca, other_ca=other.ca)) \
            as (stack, front, client):
        response = client.request("GET", "/static/refused.css")
        logs = stack.logs("nginx")
        with OriginClient(stack.origin.control_url) as origin:
            fetched = origin.count("/static/refused.css")
    assert response.status == 502, response.summary()
    assert logged in logs, logs
    assert fetched == 0  # no request crossed a connection whose certificate was refused
