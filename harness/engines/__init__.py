"""One module per engine (``nginx``, ``varnish``, and ``hitch``, Varnish's TLS listener), each
the one home of what that engine is: its binaries and Debian packages, its modules, how it is
started, how its configuration is checked (``verify``) and how to read what it stored.

Runtimes orchestrate (where files go, processes or containers, ports); engines know. A runtime
reaches engine knowledge only through this package. The engine names themselves are the policy
language's (``generator.targets.ENGINES``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from cachewright.generator.model import Policy
from cachewright.generator.render import OutputFile
from cachewright.generator.targets import ENGINES

from . import hitch, nginx, varnish
from .stored import StoredObject

__all__ = ["ENGINES", "PACKAGES", "Engine", "StoredObject", "binaries", "engine", "packages",
           "stale_age_limit"]


class Engine(Protocol):
    """What every engine module offers (the modules themselves implement it)."""

    NAME: str
    #: binaries that must be on PATH to run it at all, and those it needs to serve HTTPS
    BINARIES: tuple[str, ...]
    HTTPS_BINARIES: tuple[str, ...]
    #: the flag of ``BINARIES[0]`` that prints its version
    VERSION_FLAG: str
    #: where its modules are installed (directories, file name pattern), and what to install
    #: for those generated configurations load (named in error messages)
    MODULE_DIRS: tuple[str, ...]
    MODULE_GLOB: str
    MODULES_FROM: str

    def version(self, output: str) -> tuple[int, int, int] | None:
        """The version the binary printed with ``VERSION_FLAG`` (either stream)."""
        ...

    def modules(self, files: Mapping[str, OutputFile]) -> list[str]:
        """The modules (vmods) the compiled files load."""
        ...

    def module_file(self, module: str) -> str:
        """The file name under which ``module`` is installed."""
        ...


_BY_NAME: dict[str, Engine] = {"nginx": nginx, "varnish": varnish}

#: the Debian packages of every binary the harness runs; the one list (``.ci/setup`` and
#: ``harness/images/build-local.sh`` repeat it in shell: tests/test_engines.py checks they agree)
PACKAGES: dict[str, str] = {**nginx.PACKAGES, **varnish.PACKAGES, **hitch.PACKAGES}


def engine(name: str) -> Engine:
    """The module of engine ``name`` (KeyError for another name)."""
    return _BY_NAME[name]


def stale_age_limit(name: str) -> bool:
    """Whether engine ``name`` serves a stale response only within the policy's
    ``stale.while_revalidate`` window (nginx: without an age limit)."""
    return bool(getattr(engine(name), "STALE_AGE_LIMIT", True))


def binaries(name: str, policy: Policy | None = None) -> tuple[str, ...]:
    """What must be on PATH to run ``policy`` on engine ``name`` (without a policy: to run it at
    all)."""
    module = engine(name)
    https = policy is not None and policy.listen.https is not None
    return module.BINARIES + (module.HTTPS_BINARIES if https else ())


def packages(name: str) -> str:
    """The Debian packages for engine ``name``, its HTTPS listener's included."""
    module = engine(name)
    return " ".join(PACKAGES[b] for b in module.BINARIES + module.HTTPS_BINARIES)
