"""The origin's own source files, for a container that has nothing but python3."""

from __future__ import annotations

from pathlib import Path
from typing import Final

#: modules only the host side uses (the control-port client needs ``requests``)
HOST_ONLY: Final = frozenset({"client.py"})


def server_files() -> dict[str, bytes]:
    """What makes ``python3 -m cachewright.harness.origin`` run from a directory on PYTHONPATH,
    by path below it: every module of this package but the client, and an empty
    ``cachewright/harness/__init__.py`` (the harness's own would pull in the whole tool)."""
    files = {"cachewright/harness/__init__.py": b""}
    for module in sorted(Path(__file__).parent.glob("*.py")):
        if module.name not in HOST_ONLY:
            files[f"cachewright/harness/origin/{module.name}"] = module.read_bytes()
    return files
