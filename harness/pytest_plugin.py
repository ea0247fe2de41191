"""pytest plugin: write your own cache tests against the real engines running your policy.

Registered through the ``pytest11`` entry point (``cachewright``), so installing cachewright is
enough. Fixtures:

* ``cachewright_policy`` – the policy file (``--cachewright-policy`` or the ini value
  ``cachewright_policy``, relative to the ini file);
* ``cachewright_engine`` – the engine of this test run; tests using it (or ``cache``) run once per
  engine selected by ``--cachewright-engine nginx|varnish|all`` (default: all) and by the marker
  ``@pytest.mark.cachewright(engines=["varnish"])``;
* ``cachewright_origin_url`` – your own app's URL, which the engines then proxy to instead of
  the sample origin: ``--cachewright-origin URL``, the ini value ``cachewright_origin``, or
  override this fixture (e.g. to start your app for the session and return its URL); None: the
  sample origin;
* ``cachewright_stack`` – one ``LocalRuntime`` stack for the whole session (origin + engines);
* ``cache`` – a ``harness.client.Client`` for the current engine (Host: the policy's first
  ``listen.hosts`` entry; https when the policy redirects plain HTTP);
* ``cachewright_identity`` – a ``harness.client.Identity``: what tells responses apart
  (``--cachewright-response-id-header``; else the sample origin's ``X-Response-Id``, or your
  app's ``ETag``, else a body digest);
* ``origin`` – an ``OriginClient`` on the sample origin's control port, reset before each test
  (a test using it is skipped against your own app: there is no control port).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Unpack

import pytest

from cachewright.generator.load import load
from cachewright.generator.model import Policy

from .client import SAMPLE_IDENTITY, Client, Identity, Response, Sending
from .engines import ENGINES, binaries
from .origin import OriginClient
from .runtime.api import Stack
from .runtime.local import LocalRuntime
from .runtime.prepare import request_host

MARKER = "cachewright"


@dataclass
class CacheClient(Client):
    """A ``Client`` whose default scheme is the one the policy serves content on."""

    scheme: str = "http"

    def request(self, method: str, target: str, headers: dict[str, str] | None = None, *,
                scheme: str | None = None, host: str | None = None, **kw: Unpack[Sending]) -> Response:
        """As ``Client.request``; ``scheme`` defaults to this client's."""
        return super().request(method, target, headers, scheme=scheme or self.scheme, host=host, **kw)


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--cachewright-policy``, ``--cachewright-engine`` and the ini value."""
    group = parser.getgroup("cachewright", "cachewright cache tests")
    group.addoption("--cachewright-policy", metavar="POLICY",
                    help="policy file the cachewright fixtures run (overrides the ini value)")
    group.addoption("--cachewright-engine", choices=(*ENGINES, "all"), default="all",
                    help="engine(s) cachewright tests run on (default: all)")
    group.addoption("--cachewright-origin", metavar="URL",
                    help="your running app (http://HOST:PORT): the engines proxy to it instead of "
                         "the sample origin (overrides the ini value)")
    group.addoption("--cachewright-response-id-header", metavar="NAME",
                    help="a header your app sets uniquely per response (cachewright_identity)")
    parser.addini("cachewright_policy", "policy file the cachewright fixtures run (relative to "
                  "the ini file)", default=None)
    parser.addini("cachewright_origin", "your running app's URL (instead of the sample origin)",
                  default=None)


def pytest_configure(config: pytest.Config) -> None:
    """Register the ``cachewright`` marker."""
    config.addinivalue_line("markers", f"{MARKER}(engines=[...]): run this test only on these "
                            "engines (nginx, varnish)")


def selected_engines(config: pytest.Config) -> tuple[str, ...]:
    """The engines ``--cachewright-engine`` selects."""
    chosen = config.getoption("cachewright_engine") or "all"
    return ENGINES if chosen == "all" else (chosen,)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Run tests that use ``cachewright_engine`` once per engine; unselected ones are skipped."""
    if "cachewright_engine" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker(MARKER)
    wanted = tuple(marker.kwargs.get("engines", ENGINES)) if marker else ENGINES
    unknown = set(wanted) - set(ENGINES)
    if unknown:
        raise pytest.UsageError(f"{metafunc.definition.nodeid}: unknown engine(s) in "
                                f"@pytest.mark.{MARKER}: {', '.join(sorted(unknown))}")
    selected = selected_engines(metafunc.config)
    params = [pytest.param(e, id=e, marks=_skip(e, wanted, selected)) for e in ENGINES]
    metafunc.parametrize("cachewright_engine", params)


def _skip(engine: str, wanted: tuple[str, ...], selected: tuple[str, ...]) -> list[pytest.MarkDecorator]:
    if engine not in wanted:
        return [pytest.mark.skip(reason=f"@pytest.mark.{MARKER} excludes {engine}")]
    if engine not in selected:
        return [pytest.mark.skip(reason=f"--cachewright-engine excludes {engine}")]
    return []


@pytest.fixture(scope="session")
def cachewright_policy(pytestconfig: pytest.Config) -> Path:
    """The policy file under test."""
    given = pytestconfig.getoption("cachewright_policy")
    if given:
        return Path(given).resolve()
    ini = pytestconfig.getini("cachewright_policy")
    if ini:
        base = pytestconfig.inipath.parent if pytestconfig.inipath else pytestconfig.rootpath
        return (base / str(ini)).resolve()
    raise pytest.UsageError("cachewright: no policy (pass --cachewright-policy POLICY or set "
                            "cachewright_policy in the pytest ini section)")


@pytest.fixture(scope="session")
def cachewright_policy_model(cachewright_policy: Path) -> Policy:
    """The loaded, validated policy."""
    return load(cachewright_policy)


@pytest.fixture(scope="session")
def cachewright_origin_url(pytestconfig: pytest.Config) -> str | None:
    """Your app's URL (``--cachewright-origin`` or the ini value), or None for the sample
    origin. Override this fixture to start your app for the session and return its URL."""
    given = pytestconfig.getoption("cachewright_origin") or pytestconfig.getini("cachewright_origin")
    return str(given) if given else None


@pytest.fixture(scope="session")
def cachewright_stack(pytestconfig: pytest.Config, cachewright_policy_model: Policy,
                      cachewright_origin_url: str | None) -> Iterator[Stack]:
    """The origin (the sample one, or your app) and every selected, installed engine, for the
    whole session."""
    engines = tuple(e for e in selected_engines(pytestconfig) if _installed(e))
    if not engines:
        pytest.skip("cachewright: no selected engine is installed (nginx, varnishd)")
    with LocalRuntime().start(cachewright_policy_model, engines, cachewright_origin_url) as stack:
        yield stack


@pytest.fixture(scope="session")
def cachewright_identity(pytestconfig: pytest.Config, cachewright_origin_url: str | None) -> Identity:
    """What tells two responses apart: ``identity.of(a) == identity.of(b)`` means the same
    response (with a per-response header, proof that ``b`` came from the cache)."""
    header = pytestconfig.getoption("cachewright_response_id_header")
    if header:
        return Identity(header)
    return Identity() if cachewright_origin_url else SAMPLE_IDENTITY


def _installed(engine: str) -> bool:
    return all(shutil.which(b) for b in binaries(engine))


@pytest.fixture
def cache(cachewright_stack: Stack, cachewright_engine: str,
          cachewright_policy_model: Policy) -> CacheClient:
    """A client for the current engine, sending the policy's Host on the scheme it serves."""
    if cachewright_engine not in cachewright_stack.endpoints:
        pytest.skip(f"cachewright: {cachewright_engine} is not installed")
    policy = cachewright_policy_model
    return CacheClient(cachewright_stack.endpoints[cachewright_engine], request_host(policy),
                       cachewright_stack.ca_file, cache_name=policy.headers.cache_status_name,
                       scheme=_scheme(policy))


def _scheme(policy: Policy) -> str:
    https = policy.listen.https
    return "https" if https is not None and (https.redirect_http or not policy.listen.http) \
        else "http"


@pytest.fixture
def origin(cachewright_stack: Stack) -> Iterator[OriginClient]:
    """The sample origin's control port, reset (rules, counts, log) before the test; skipped
    against your own app, which has none."""
    if not cachewright_stack.origin.control_url:
        pytest.skip("cachewright: the origin fixture needs the sample origin's control port "
                    "(not with your own app as the origin)")
    with OriginClient(cachewright_stack.origin.control_url) as client:
        client.reset()
        yield client
