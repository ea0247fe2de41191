"""Running an engine's own tool on generated files, and showing its verdict in the policy's terms.

Every engine module checks its configuration with its own tool (``nginx -t``, ``varnishd -C``,
``hitch --test``) through ``run``; a rejection is shown with the engine's own words plus the
policy rule that produced the offending line: the templates mark each rule's lines with a
``rule NAME (file:line:col)`` comment.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from cachewright.generator.errors import ToolMissing, VerifyError

_MARKER = re.compile(r"(?:#|//) cachewright: (rule .*)$")
TIMEOUT = 120


@dataclass(frozen=True)
class Verified:
    """An engine accepted its files; ``version`` is its own version line."""

    engine: str
    version: str


def run(argv: list[str], cwd: Path, packages: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run an engine's tool; ToolMissing naming the Debian package (from ``packages``, binary →
    packages) when it is not installed, VerifyError when it hangs."""
    if shutil.which(argv[0]) is None:
        raise ToolMissing(f"{argv[0]} is not installed (needed to verify; on Debian: apt-get "
                          f"install {packages[argv[0]]})")
    try:
        return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=TIMEOUT,
                              check=False)
    except subprocess.TimeoutExpired:
        raise VerifyError(f"{' '.join(argv[:2])} did not finish within {TIMEOUT} s") from None


def version(pattern: str, text: str) -> tuple[int, int, int] | None:
    """``major.minor.patch`` after ``pattern`` (``nginx/``, ``varnish-``) in a tool's output."""
    match = re.search(pattern + r"(\d+)\.(\d+)\.(\d+)", text)
    return (int(match[1]), int(match[2]), int(match[3])) if match else None


def first_line(text: str) -> str:
    """The first line of a tool's version output."""
    return text.strip().splitlines()[0] if text.strip() else "unknown version"


def provide_certs(conf: Path, root: Path, policy_dir: Path, pattern: str) -> None:
    """Point the checked copy of ``conf`` at certificate files inside ``root``: the policy's own
    (relative to the policy file) or an absolute path when they exist, a throw-away pair
    otherwise (a syntax check needs a readable file). Nothing is written outside ``root``."""
    text = conf.read_text(encoding="utf-8")
    found = list(re.finditer(pattern, text, re.MULTILINE))
    if not found:
        return
    from ..certs import throwaway_pair  # only needed with HTTPS (cryptography is slow to import)

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


def explain(tool: str, stderr: str, conf: Path, line_re: re.Pattern[str]) -> str:
    """The tool's rejection, with the offending line and the policy rule that produced it."""
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
