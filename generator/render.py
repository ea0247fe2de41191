"""One strictly configured Jinja environment; templates only loop and print."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import jinja2

from . import __version__
from .quote import nginx_str, vcl_str


@dataclass(frozen=True)
class OutputFile:
    """One generated file: its path relative to the output directory, and its text."""

    path: str
    text: str
    mode: int = 0o644


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("cachewright.templates", ""),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        autoescape=False,
        bytecode_cache=template_cache(),
    )
    env.filters["nq"] = nginx_str
    env.filters["vq"] = vcl_str
    return env


class TemplateCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept between runs in the user's cache folder
    (``$XDG_CACHE_HOME/cachewright/templates``, else ``~/.cache/cachewright/templates``), an
    entry per template path, used only while the template's text is unchanged. Compiling the
    templates is a fifth of a 1000-rule compile. Not the temporary directory: a run leaves
    nothing there. An entry that cannot be read or written is passed over: no compile depends
    on the cache."""

    def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # a damaged entry (any unpickling error): compile the template anew
            bucket.reset()

    def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
        try:
            super().dump_bytecode(bucket)
        except OSError:  # a full or read-only disk: the next run compiles again
            pass


def cache_folder() -> Path:
    """Where compiled templates are kept: the XDG cache folder of the user running us."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cachewright" / "templates"


def template_cache() -> jinja2.BytecodeCache | None:
    """The template cache; None (compile every run) where no private folder can be had: one
    that cannot be made, or one another user owns or others may write (a planted template
    would run as our code)."""
    try:
        folder = cache_folder()
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        held = folder.lstat()
    except (OSError, RuntimeError):  # RuntimeError: no home folder to be found
        return None
    if not stat.S_ISDIR(held.st_mode) or held.st_uid != os.getuid() or held.st_mode & 0o022:
        return None
    return TemplateCache(str(folder))


def render(template: str, model: object, source: str) -> str:
    """Render ``template`` with ``model``; every file starts with a header naming its origin."""
    header = {"generator": "cachewright", "version": __version__, "source": source}
    return environment().get_template(template).render(m=model, header=header)
