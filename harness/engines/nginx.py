"""nginx: its binary and Debian packages, its modules, how it is started and checked, and how to
read what it stored (the cache files' own header)."""

from __future__ import annotations

import contextlib
import re
import struct
from collections.abc import Mapping
from pathlib import Path

from cachewright.generator.errors import VerifyError
from cachewright.generator.render import OutputFile

from . import tools
from .stored import StoredObject
from .tools import Verified, explain, first_line, provide_certs, run

NAME = "nginx"
#: what must be on PATH to run it, and what more to serve HTTPS (nothing: nginx terminates TLS)
BINARIES: tuple[str, ...] = ("nginx",)
HTTPS_BINARIES: tuple[str, ...] = ()
#: the Debian packages that give the binary and the modules generated configs load (purge, njs)
PACKAGES = {"nginx": "nginx-light libnginx-mod-http-cache-purge libnginx-mod-http-js"}
#: what an image needs installed for the modules generated configs load
MODULES_FROM = "the Debian packages " + PACKAGES["nginx"]
CONF = "nginx.conf"
#: proxy_cache_use_stale updating serves a stale response while it is refreshed with no age
#: limit: cache.stale.while_revalidate does not bound it
STALE_AGE_LIMIT = False
#: prints ``nginx version: nginx/1.22.1`` (on stderr)
VERSION_FLAG = "-v"
#: where Debian's and the official images' packages install dynamic modules
MODULE_DIRS: tuple[str, ...] = ("/usr/lib/nginx/modules", "/etc/nginx/modules", "/usr/share/nginx/modules")
MODULE_GLOB = "*.so"
#: the files of a run's prefix directory that nginx writes (made before it starts)
DIRECTORIES = ("logs", "cache", "tmp")
_LINE = re.compile(r"in (\S+):(\d+)")


def modules(files: Mapping[str, OutputFile]) -> list[str]:
    """The module files (``ngx_http_…_module.so``) the compiled ``nginx.conf`` loads."""
    return re.findall(r"^load_module\s+\S*?([^/\s]+\.so);", files[CONF].text, re.M)


def version(output: str) -> tuple[int, int, int] | None:
    """The version ``nginx -v`` printed."""
    return tools.version(r"nginx/", output)


def module_file(module: str) -> str:
    """The file name under which ``module`` (as ``modules`` names it) is installed."""
    return module


def argv(binary: str, prefix: str, error_log: str, directives: str = "daemon off;") -> list[str]:
    """nginx in the foreground with ``prefix`` (ending in ``/``) holding ``nginx.conf``."""
    return [binary, "-p", prefix, "-c", f"{prefix}{CONF}", "-e", error_log, "-g", directives]


def check(prefix: Path, policy_dir: Path) -> Verified:
    """``nginx -t`` on ``prefix/nginx.conf`` (certificates it names provided when missing)."""
    conf = prefix / CONF
    for sub in DIRECTORIES:
        (prefix / sub).mkdir(exist_ok=True)
    provide_certs(conf, prefix, policy_dir,
                  r'^\s*(?P<directive>ssl_certificate(?:_key)?|proxy_ssl_trusted_certificate)'
                  r'\s+"(?P<path>[^"]+)";')
    result = run(["nginx", "-t", "-q", "-p", str(prefix), "-c", str(conf),
                  "-e", str(prefix / "logs" / "verify.log")], prefix, PACKAGES)
    if result.returncode != 0:
        raise VerifyError(explain("nginx -t", result.stderr, conf, _LINE))
    return Verified(NAME, first_line(run(["nginx", "-v"], prefix, PACKAGES).stderr))


# ngx_http_file_cache_header_t (src/http/ngx_http_cache.h, cache file version 5, nginx >= 1.11.10,
# LP64): version, valid_sec, updating_sec, error_sec, last_modified, date, crc32, valid_msec,
# header_start, body_start, etag_len, etag[128], vary_len, vary[128], variant[16]; then
# "\nKEY: <key>\n" at the struct's padded size, then the response header at header_start.
_HEADER = struct.Struct("=Q5qI3HB128sB128s16s")
_CACHE_VERSION = 5
_KEY_MARK = b"\nKEY: "
_FILE = re.compile(r"[0-9a-f]{32}")


def stored(cache_dir: Path, path: str) -> list[StoredObject]:
    """Objects in nginx's cache directory whose key's path is ``path`` (with the query when
    ``path`` has one), TTL = ``valid_sec - date`` from the file header."""
    found = []
    for file in sorted(cache_dir.rglob("*")):
        if _FILE.fullmatch(file.name) and file.is_file():
            entry = read_cache_file(file)
            if entry is not None and _key_matches(entry.key, path):
                found.append(entry)
    return found


def read_cache_file(file: Path) -> StoredObject | None:
    """The key and TTL recorded in one nginx cache file (None for another format version)."""
    with contextlib.suppress(OSError), open(file, "rb") as f:
        data = f.read(1 << 16)  # header_start is a u_short: the key ends within 64 KiB
        if len(data) < _HEADER.size:
            return None
        version, valid_sec, _u, _e, _lm, date, _crc, _ms, header_start, *_ = _HEADER.unpack_from(data)
        mark = data.find(_KEY_MARK, _HEADER.size, header_start)
        if version != _CACHE_VERSION or mark < 0:
            return None
        key = data[mark + len(_KEY_MARK):header_start].removesuffix(b"\n")
        return StoredObject(key.decode("utf-8", "replace"), float(valid_sec - date))
    return None


def _key_matches(key: str, path: str) -> bool:
    """Whether the request target in ``key`` (first line, after any scheme and host) is ``path``."""
    first = key.split("\n", 1)[0]
    rest = first.split("://", 1)[-1]
    start = rest.find("/")
    if start < 0:
        return False
    target = rest[start:]
    return target.removesuffix("?") == path if "?" in path else target.split("?", 1)[0] == path
