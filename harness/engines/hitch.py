"""hitch, Varnish's HTTPS listener: its package, how its compiled configuration is pointed at
varnishd's PROXY listener where a runtime placed it, and how it is started and checked."""

from __future__ import annotations

import contextlib
import re
import socket
from collections.abc import Iterator
from pathlib import Path

from cachewright.generator.errors import VerifyError

from .tools import Verified, first_line, provide_certs, run

NAME = "hitch"
PACKAGES = {"hitch": "hitch"}
CONF = "hitch.conf"
#: the user hitch drops to as root (Debian's package creates it)
USER = "_hitch"


def conf(compiled: str, backend_host: str, backend_port: int, ocsp_dir: str, runtime: str,
         drop: bool) -> str:
    """The compiled ``hitch.conf`` sending PROXY to ``backend_host:backend_port``, plus what
    hitch needs where ``runtime`` runs it: an OCSP cache dir and, where ``drop``, the user to
    drop to."""
    text = re.sub(r'(?m)^backend = ".*"$', f'backend = "[{backend_host}]:{backend_port}"', compiled)
    text += f'# added by the cachewright {runtime} runtime\nocsp-dir = "{ocsp_dir}"\n'
    if drop:
        text += f'user = "{USER}"\ngroup = "{USER}"\n'
    return text


def argv(binary: str, conf_path: str) -> list[str]:
    """hitch with its configuration file."""
    return [binary, f"--config={conf_path}"]


def check(workdir: Path, policy_dir: Path) -> Verified:
    """``hitch --test`` on ``workdir/hitch.conf`` (certificates and backend socket provided)."""
    path = workdir / CONF
    provide_certs(path, workdir, policy_dir, r'^\s*(?P<directive>cert|private-key)\s*=\s*"(?P<path>[^"]+)"')
    with _stand_in_socket(path, workdir):
        result = run(["hitch", "--test", f"--config={path}"], workdir, PACKAGES)
    if result.returncode != 0:
        raise VerifyError(f"hitch --test rejected {path.name}:\n{result.stderr.strip()}")
    return Verified(NAME, first_line(run(["hitch", "--version"], workdir, PACKAGES).stdout))


@contextlib.contextmanager
def _stand_in_socket(path: Path, workdir: Path) -> Iterator[None]:
    """hitch --test checks that a Unix-socket backend exists: give the checked copy one."""
    text = path.read_text(encoding="utf-8")
    match = re.search(r'^backend = "(/[^"]*)"$', text, re.MULTILINE)
    if match is None:
        yield
        return
    sock_path = workdir / "backend.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(sock_path))
        path.write_text(text.replace(match.group(1), str(sock_path)), encoding="utf-8")
        yield
