"""GitHub Actions workflow commands: problems as annotations on the lines they are about.

One annotation per line of output (``::error file=F,line=L,col=C,title=T::message``), escaped
as the runner's toolkit escapes them (``%``, CR and LF in the message; also ``:`` and ``,`` in
properties), so a hostile value from a policy or a log cannot start a second command.
Commands that take ``--format github`` print these on stdout, where the runner reads them.
"""

from __future__ import annotations

from dataclasses import dataclass

LEVELS = ("error", "warning", "notice")


@dataclass(frozen=True)
class Annotation:
    """One problem at a place in a file (``line``/``col`` 1-based; 0: the whole file)."""

    level: str
    message: str
    file: str = ""
    line: int = 0
    col: int = 0
    title: str = ""

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"annotation level {self.level!r}: expected one of {LEVELS}")

    def command(self) -> str:
        """The workflow command line (no trailing newline)."""
        props = [("file", self.file), ("line", self.line or ""), ("col", self.col or ""),
                 ("title", self.title)]
        shown = ",".join(f"{k}={escape_property(str(v))}" for k, v in props if v != "")
        return f"::{self.level}{' ' + shown if shown else ''}::{escape_data(self.message)}"


def escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render(annotations: list[Annotation] | tuple[Annotation, ...]) -> str:
    """The annotations, one command per line."""
    return "".join(a.command() + "\n" for a in annotations)
