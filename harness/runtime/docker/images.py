"""Images of the docker runtime: which image each role runs (``cachewright/<role>:local`` when
present, ``harness/images/build-local.sh``; else the official images at pinned tags), and what
each offers, probed once per image id (engine version, module directory, modules, users) and
cached across runs; a policy needing a module the image lacks is refused with the module named."""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import docker
import docker.errors

from cachewright.generator.render import OutputFile

from ... import engines
from ...engines import hitch, nginx, varnish
from ..api import HarnessError
from .reaper import LABEL

ROLES = ("nginx", "varnish", "hitch", "origin")
LOCAL_IMAGES = {role: f"cachewright/{role}:local" for role in ROLES}
OFFICIAL_IMAGES = {"nginx": "nginx:1.27", "varnish": "varnish:7.6", "hitch": "hitch:1.8",
                   "origin": "python:3.11-slim"}


@dataclass(frozen=True)
class ImageInfo:
    """What one image offers: engine versions, nginx's module dir and modules, Varnish's vmods,
    and which of Debian's service users exist (for dropping privileges as the local runtime)."""

    image: str
    nginx_version: tuple[int, int, int] | None = None
    nginx_modules_dir: str | None = None
    nginx_modules: tuple[str, ...] = ()
    varnish_version: tuple[int, int, int] | None = None
    vmods: tuple[str, ...] = ()
    users: tuple[str, ...] = ()

    def modules(self, engine: str) -> tuple[str, ...]:
        """The module files the image holds for ``engine``."""
        return self.nginx_modules if engine == "nginx" else self.vmods


def image_for(client: docker.DockerClient, role: str, override: str | None) -> str:
    """The override, else ``cachewright/<role>:local`` when present, else the official image
    (pulled when missing: ``HarnessError`` with what to do when that fails)."""
    if override is None:
        with contextlib.suppress(docker.errors.ImageNotFound):
            client.images.get(LOCAL_IMAGES[role])
            return LOCAL_IMAGES[role]
    image = override or OFFICIAL_IMAGES[role]
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        try:
            client.images.pull(image)
        except docker.errors.APIError as exc:
            raise HarnessError(f"image {image} ({role}) is not present and could not be pulled "
                               f"({exc.explanation or exc}); build local stand-ins with "
                               f"harness/images/build-local.sh") from exc
    return image


def require_modules(engine: str, info: ImageInfo, files: Mapping[str, OutputFile]) -> None:
    """HarnessError naming each module the compiled files load that ``info``'s image lacks."""
    module = engines.engine(engine)
    have = info.modules(engine)
    missing = [m for m in module.modules(files) if module.module_file(m) not in have]
    if missing:
        raise HarnessError(
            f"image {info.image} ({engine}) lacks {', '.join(missing)}, which this policy needs "
            f"(image has: {', '.join(have) or 'no modules'}); build the stand-in images with "
            f"harness/images/build-local.sh, or pass an image with {module.MODULES_FROM} installed")


# --------------------------------------------------------------------------- probing

def _probe_script() -> str:
    """A shell script printing the engines' versions, their modules and the service users."""
    lines = ["", f"nginx {nginx.VERSION_FLAG} 2>&1; varnishd {varnish.VERSION_FLAG} 2>&1 | head -1"]
    for mark, engine in (("NGXMOD", nginx), ("VMOD", varnish)):
        lines += [f"for d in {' '.join(engine.MODULE_DIRS)}; do",
                  f'  [ -d "$d" ] && for f in "$d"/{engine.MODULE_GLOB}; do [ -e "$f" ] && echo "{mark} $f"; done',
                  "done"]
    users = " ".join((*varnish.USERS, hitch.USER, "nobody"))
    lines += [f'for u in {users}; do id -u "$u" >/dev/null 2>&1 && echo "USER $u"; done', "true", ""]
    return "\n".join(lines)


_PROBE = _probe_script()
_probed: dict[str, ImageInfo] = {}


def probe_image(client: docker.DockerClient, image: str) -> ImageInfo:
    """Probe ``image`` in a throw-away container (once per image id, also across runs)."""
    image_id = str(client.images.get(image).id)
    cache_file = _cache_dir() / "docker-images.json"
    if image_id not in _probed:
        _probed.update(_read_probe_cache(cache_file))
    if image_id not in _probed:
        out = client.containers.run(image, ["sh", "-c", _PROBE], entrypoint=[], remove=True, user="0",
                                    labels={LABEL: "1", "cachewright.probe": "1"}, network_mode="none")
        _probed[image_id] = _parse_probe(image, out.decode("utf-8", "replace"))
        _write_probe_cache(cache_file, _probed)
    return replace(_probed[image_id], image=image)


def _parse_probe(image: str, text: str) -> ImageInfo:
    mods = re.findall(r"^NGXMOD (\S+)$", text, re.M)
    return ImageInfo(
        image,
        nginx.version(text),
        os.path.dirname(mods[0]) if mods else None,
        tuple(os.path.basename(m) for m in mods),
        varnish.version(text),
        tuple(os.path.basename(m) for m in re.findall(r"^VMOD (\S+)$", text, re.M)),
        tuple(re.findall(r"^USER (\S+)$", text, re.M)))


def _cache_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "cachewright"


def _read_probe_cache(path: Path) -> dict[str, ImageInfo]:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {key: _info_from_json(info) for key, info in raw.items()}
    except (OSError, ValueError, TypeError, KeyError):
        return {}


def _info_from_json(raw: dict[str, Any]) -> ImageInfo:
    def version(value: Any) -> tuple[int, int, int] | None:
        return (int(value[0]), int(value[1]), int(value[2])) if value else None

    return ImageInfo(str(raw["image"]), version(raw["nginx_version"]), raw["nginx_modules_dir"],
                     tuple(raw["nginx_modules"]), version(raw["varnish_version"]),
                     tuple(raw["vmods"]), tuple(raw["users"]))


def _write_probe_cache(path: Path, probed: Mapping[str, ImageInfo]) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps({k: vars(v) for k, v in probed.items()}), encoding="utf-8")
        tmp.replace(path)

