"""Check generated files with the real engines: ``nginx -t``, ``varnishd -C``, ``hitch --test``.

An engine's error is shown with its own words, plus the policy rule that produced the line: the
templates mark each rule's lines with a ``rule NAME (file:line:col)`` comment.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolMissing, VerifyError
from .render import OutputFile

_MARKER = re.compile(r"(?:#|//) cachewright: (rule .*)$")
_NGINX_LINE = re.compile(r"in (\S+):(\d+)")
_VCL_LINE = re.compile(r"\('?([^' ]+)'? Line (\d+) Pos \d+\)")
TIMEOUT = 120


@dataclass(frozen=True)
class Verified:
    engine: str
    version: str


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
        if "nginx/nginx.conf" in names:
            done.append(_nginx(root / "nginx", policy_dir))
        if "varnish/default.vcl" in names:
            done.append(_varnish(root / "varnish"))
        if "hitch/hitch.conf" in names:
            done.append(_hitch(root / "hitch", policy_dir))
        return done


def _stand_in(text: str, hosts: list[str]) -> str:
    for host in hosts:
        name = re.escape(host)
        text = re.sub(rf"^(\s*server ){name}(:\d+)", r"\g<1>127.0.0.1\2", text, flags=re.M)
        text = re.sub(rf'^(\s*\.host = "){name}(";)', r"\g<1>127.0.0.1\2", text, flags=re.M)
    return text


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which(argv[0]) is None:
        raise ToolMissing(f"{argv[0]} is not installed (needed to verify; on Debian: apt-get "
                          f"install {PACKAGES[argv[0]]})")
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired:
        raise VerifyError(f"{' '.join(argv[:2])} did not finish within {TIMEOUT} s") from None


#: the Debian packages that give each engine binary and the modules generated configs load
#: (purge, njs; varnish-modules' vmods); the one list the harness's hints name too
PACKAGES = {"nginx": "nginx-light libnginx-mod-http-cache-purge libnginx-mod-http-js",
            "varnishd": "varnish varnish-modules", "varnishlog": "varnish", "hitch": "hitch"}


def _nginx(prefix: Path, policy_dir: Path) -> Verified:
    conf = prefix / "nginx.conf"
    for sub in ("logs", "cache", "tmp"):
        (prefix / sub).mkdir(exist_ok=True)
    _provide_certs(conf, prefix, policy_dir,
                   r'^\s*(?P<directive>ssl_certificate(?:_key)?|proxy_ssl_trusted_certificate)'
                   r'\s+"(?P<path>[^"]+)";')
    result = _run(["nginx", "-t", "-q", "-p", str(prefix), "-c", str(conf),
                   "-e", str(prefix / "logs" / "verify.log")], prefix)
    if result.returncode != 0:
        raise VerifyError(_explain("nginx -t", result.stderr, conf, _NGINX_LINE))
    return Verified("nginx", _first_line(_run(["nginx", "-v"], prefix).stderr))


def _varnish(workdir: Path) -> Verified:
    vcl = workdir / "default.vcl"
    result = _run(["varnishd", "-C", "-f", str(vcl), "-n", str(workdir / "state")], workdir)
    if result.returncode != 0:
        raise VerifyError(_explain("varnishd -C", result.stderr, vcl, _VCL_LINE))
    return Verified("varnish", _first_line(_run(["varnishd", "-V"], workdir).stderr))


def _hitch(workdir: Path, policy_dir: Path) -> Verified:
    conf = workdir / "hitch.conf"
    _provide_certs(conf, workdir, policy_dir,
                   r'^\s*(?P<directive>cert|private-key)\s*=\s*"(?P<path>[^"]+)"')
    with _stand_in_socket(conf, workdir):
        result = _run(["hitch", "--test", f"--config={conf}"], workdir)
    if result.returncode != 0:
        raise VerifyError(f"hitch --test rejected {conf.name}:\n{result.stderr.strip()}")
    return Verified("hitch", _first_line(_run(["hitch", "--version"], workdir).stdout))


@contextlib.contextmanager
def _stand_in_socket(conf: Path, workdir: Path) -> Iterator[None]:
    """hitch --test checks that a Unix-socket backend exists: give the checked copy one."""
    text = conf.read_text(encoding="utf-8")
    match = re.search(r'^backend = "(/[^"]*)"$', text, re.MULTILINE)
    if match is None:
        yield
        return
    path = workdir / "backend.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(path))
        conf.write_text(text.replace(match.group(1), str(path)), encoding="utf-8")
        yield


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else "unknown version"


def _provide_certs(conf: Path, root: Path, policy_dir: Path, pattern: str) -> None:
    """Point the checked copy of ``conf`` at certificate files inside ``root``: the policy's own
    (relative to the policy file) or an absolute path when they exist, a throw-away pair
    otherwise (a syntax check needs a readable file). Nothing is written outside ``root``."""
    text = conf.read_text(encoding="utf-8")
    found = list(re.finditer(pattern, text, re.MULTILINE))
    if not found:
        return
    from .certs import throwaway_pair  # only needed with HTTPS

    cert_pem, key_pem = throwaway_pair()
    store = root / "certs"
    store.mkdir(mode=0o755, exist_ok=True)
    for n, match in enumerate(reversed(found)):
        path, is_key = Path(match.group("path")), "key" in match.group("directive")
        if path.is_absolute() and path.is_file():
            continue
        target = store / f"{n}-{'key' if is_key else 'cert'}.pem"
        own = policy_dir / path
        if not path.is_absolute() and own.is_file():
            shutil.copyfile(own, target)
        else:
            target.write_bytes(key_pem if is_key else cert_pem)
        target.chmod(0o644)
        text = text[:match.start("path")] + str(target) + text[match.end("path"):]
    conf.write_text(text, encoding="utf-8")


def _explain(tool: str, stderr: str, conf: Path, line_re: re.Pattern[str]) -> str:
    message = f"{tool} rejected the generated {conf.name}:\n{stderr.strip()}"
    match = line_re.search(stderr)
    if match and Path(match.group(1)).name == conf.name:
        line_no = int(match.group(2))
        lines = conf.read_text(encoding="utf-8").splitlines()
        rule = _rule_for_line(lines, line_no)
        bad = lines[line_no - 1].strip() if 0 < line_no <= len(lines) else ""
        message += f"\n  line {line_no}: {bad}"
        if rule:
            message += f"\n  produced by {rule}"
    return message


def _rule_for_line(lines: list[str], line_no: int) -> str | None:
    for line in reversed(lines[:line_no]):
        match = _MARKER.search(line)
        if match:
            return match.group(1)
    return None
