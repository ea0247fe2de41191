"""Check generated files with the real engines: ``nginx -t``, ``varnishd -C``, ``hitch --test``.

Each engine module runs its own tool (``harness.engines.tools``); an engine's error is shown with
its own words, plus the policy rule that produced the line.
"""

from __future__ import annotations

import re
import socket
import tempfile
from collections.abc import Iterable
from pathlib import Path

from cachewright.generator.render import OutputFile

from . import hitch, nginx, varnish
from .tools import Verified

__all__ = ["Verified", "unresolvable", "verify"]


def unresolvable(hosts: Iterable[str]) -> list[str]:
    """Origin host names this machine cannot resolve (they may exist only where it is deployed)."""
    out = []
    for host in sorted(set(hosts)):
        try:
            socket.getaddrinfo(host, None)
        except (OSError, UnicodeError):
            out.append(host)
    return out


def verify(files: Iterable[OutputFile], policy_dir: Path,
           stand_ins: Iterable[str] = ()) -> list[Verified]:
    """Run each engine's own check on ``files``; raise VerifyError with the engine's message.

    Both engines resolve origin host names while loading; names in ``stand_ins`` (unresolvable
    here) are checked as 127.0.0.1 so the rest of the configuration is still verified.
    """
    files = list(files)
    stand_ins = list(stand_ins)
    with tempfile.TemporaryDirectory(prefix="cachewright-verify-") as tmp:
        root = Path(tmp)
        root.chmod(0o755)  # varnishd and nginx drop privileges when run as root
        for f in files:
            (root / f.path).parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            (root / f.path).write_text(_stand_in(f.text, stand_ins), encoding="utf-8")
        done = []
        names = {f.path for f in files}
        if f"nginx/{nginx.CONF}" in names:
            done.append(nginx.check(root / "nginx", policy_dir))
        if f"varnish/{varnish.VCL}" in names:
            done.append(varnish.check(root / "varnish"))
        if f"hitch/{hitch.CONF}" in names:
            done.append(hitch.check(root / "hitch", policy_dir))
        return done


def _stand_in(text: str, hosts: list[str]) -> str:
    for host in hosts:
        name = re.escape(host)
        text = re.sub(rf"^(\s*server ){name}(:\d+)", r"\g<1>127.0.0.1\2", text, flags=re.M)
        text = re.sub(rf'^(\s*\.host = "){name}(";)', r"\g<1>127.0.0.1\2", text, flags=re.M)
    return text
