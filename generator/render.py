"""One strictly configured Jinja environment; templates only loop and print."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

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
        bytecode_cache=_bytecode_cache(),
    )
    env.filters["nq"] = nginx_str
    env.filters["vq"] = vcl_str
    return env


class _TemplateCache(jinja2.FileSystemBytecodeCache):
    """Compiled templates kept between runs: Jinja's per-user cache in the temporary directory
    (a folder only its owner may use), an entry per template path, used only while the
    template's text is unchanged. Compiling the templates is a fifth of a 1000-rule compile.
    An entry that cannot be read or written is passed over: no compile depends on the cache."""

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


def _bytecode_cache() -> jinja2.BytecodeCache | None:
    """The template cache; None (compile every run) where no private folder can be had."""
    try:
        return _TemplateCache()
    except (OSError, RuntimeError):
        return None


def render(template: str, model: object, source: str) -> str:
    """Render ``template`` with ``model``; every file starts with a header naming its origin."""
    header = {"generator": "cachewright", "version": __version__, "source": source}
    return environment().get_template(template).render(m=model, header=header)
