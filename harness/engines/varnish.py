"""Varnish: its binaries and Debian packages, its vmods, how varnishd is started and its VCL
checked, and how to read what it stored (the backend transactions of its shared-memory log).
Its HTTPS listener is hitch (``harness.engines.hitch``) sending PROXY to varnishd."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path

from cachewright.generator.errors import VerifyError
from cachewright.generator.render import OutputFile

from . import tools
from .stored import StoredObject
from .tools import Verified, explain, first_line, run

NAME = "varnish"
#: what must be on PATH to run it, and what more to serve HTTPS (hitch, its TLS listener)
BINARIES: tuple[str, ...] = ("varnishd",)
HTTPS_BINARIES: tuple[str, ...] = ("hitch",)
#: the Debian packages of each binary (varnish-modules: the vmods generated VCL imports)
PACKAGES = {"varnishd": "varnish varnish-modules", "varnishlog": "varnish"}
#: what an image needs installed for the vmods generated VCL imports (std, cookie... ship with Varnish)
MODULES_FROM = "varnish-modules"
VCL = "default.vcl"
#: a stale object is served only within its grace (cache.stale.while_revalidate bounds it)
STALE_AGE_LIMIT = True
#: the users varnishd drops to as root, manager and worker (Debian's package creates them)
USERS = ("varnish", "vcache")
ARGS = "varnishd.args"
#: prints ``varnishd (varnish-7.1.1 revision ...)`` (on stderr)
VERSION_FLAG = "-V"
#: where Debian's and the official images' packages install vmods
MODULE_DIRS: tuple[str, ...] = ("/usr/lib/varnish/vmods", "/usr/lib/*/varnish/vmods", "/usr/local/lib/varnish/vmods")
MODULE_GLOB = "libvmod_*.so"
_LINE = re.compile(r"\('?([^' ]+)'? Line (\d+) Pos \d+\)")


def modules(files: Mapping[str, OutputFile]) -> list[str]:
    """The vmods the compiled VCL imports."""
    return re.findall(r"^import\s+(\w+)", files[VCL].text, re.M)


def version(output: str) -> tuple[int, int, int] | None:
    """The version ``varnishd -V`` printed."""
    return tools.version(r"varnish-", output)


def module_file(module: str) -> str:
    """The file name under which vmod ``module`` is installed."""
    return f"libvmod_{module}.so"


def jail(drop: bool) -> str:
    """varnishd's ``-j``: as root it drops to Debian's ``varnish`` (manager) and ``vcache``
    (worker) users (``USERS``) where ``drop``."""
    manager, worker = USERS
    return f"unix,user={manager},workuser={worker}" if drop else "none"


def args(compiled: str, proxy_listen: str) -> list[str]:
    """The compiled ``varnishd.args`` lines (``-a http=...``, ``-s ...``, ``-p ...``) with the
    PROXY listener moved to ``proxy_listen``; comments dropped."""
    out = []
    for line in compiled.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("-a https="):
            line = f"-a https={proxy_listen},PROXY"
        out.append(line)
    return out


def argv(binary: str, workdir: str, vcl: str, admin: str, jailed: str, lines: list[str]) -> list[str]:
    """varnishd in the foreground (``-F``) with ``args``' lines as its options."""
    return [binary, "-F", "-n", workdir, "-f", vcl, "-T", admin, "-j", jailed,
            *(a for line in lines for a in line.split(" ", 1))]


def check(workdir: Path) -> Verified:
    """``varnishd -C`` on ``workdir/default.vcl``."""
    vcl = workdir / VCL
    result = run(["varnishd", "-C", "-f", str(vcl), "-n", str(workdir / "state")], workdir, PACKAGES)
    if result.returncode != 0:
        raise VerifyError(explain("varnishd -C", result.stderr, vcl, _LINE))
    return Verified(NAME, first_line(run(["varnishd", "-V"], workdir, PACKAGES).stderr))


def varnishlog_argv(binary: str, workdir: str) -> list[str]:
    """varnishlog printing the backend transactions ``stored_in`` reads from the log."""
    return [binary, "-d", "-n", workdir, "-b", "-g", "vxid", "-i", "BereqURL,BereqHeader,TTL,VCL_return"]


#: ``TTL VCL ttl grace keep reference cacheable`` (what VCL set) and ``TTL RFC ttl grace keep
#: reference age date expires max-age cacheable`` (the origin's headers, before any VCL): the
#: last one of a fetch is what was stored
_TTL_RECORD = re.compile(r"^-+\s+TTL\s+(?:VCL|RFC)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+(-?[\d.]+)\s+\d+\s+"
                         r"(?:-?[\d.]+\s+){0,4}(\w+)", re.M)


def stored_in(log: str, path: str) -> list[StoredObject]:
    """Objects Varnish stored for ``path``, from ``varnishlog_argv``'s output: the last ``TTL``
    record (VCL or RFC) of each fetch (hit-for-miss ones say "uncacheable")."""
    found = [fetch(block, path) for block in log.split("\n\n")]
    return [entry for entry in found if entry is not None]


def fetch(block: str, path: str) -> StoredObject | None:
    """A stored object from one backend transaction's records, when it fetched ``path``."""
    url = re.search(r"^-+\s+BereqURL\s+(\S+)", block, re.M)
    ttls = _TTL_RECORD.findall(block)
    returns = re.findall(r"^-+\s+VCL_return\s+(\w+)", block, re.M)
    if url is None or not ttls or (returns and returns[-1] == "abandon"):
        return None
    target = url[1]
    if (target != path) if "?" in path else (target.split("?", 1)[0] != path):
        return None
    ttl, grace, _keep, cacheable = ttls[-1]
    if cacheable != "cacheable":
        return None
    return StoredObject(_key(block, target), float(ttl), float(grace))


def _key(block: str, target: str) -> str:
    """``scheme://host/target`` as the fetch saw them (Varnish logs no key, only its hash)."""
    host = re.search(r"^-+\s+BereqHeader\s+host:\s*(\S+)", block, re.M | re.I)
    proto = re.search(r"^-+\s+BereqHeader\s+X-Forwarded-Proto:\s*(\S+)", block, re.M | re.I)
    prefix = f"{proto[1]}://" if proto else ""
    return f"{prefix}{host[1] if host else ''}{target}"
