"""The one exception root, and the problem records a policy error is made of."""

from __future__ import annotations

from dataclasses import dataclass


class CachewrightError(Exception):
    """Root of every error a user can cause; the CLI turns it into a message and an exit code."""

    exit_code = 2

    def render(self) -> str:
        """The message shown to the user (no traceback)."""
        return str(self)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a policy, located in its source file."""

    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.col}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class PolicyError(CachewrightError):
    """A policy that cannot be compiled; carries every problem found, sorted by position."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(set(problems))
        super().__init__("\n".join(str(p) for p in self.problems))

    def render(self) -> str:
        count = len(self.problems)
        noun = "error" if count == 1 else "errors"
        return f"{self}\n{count} {noun} in policy"


class UsageError(CachewrightError):
    """A command-line option, or a file it names, that cannot be used as given."""


class CapabilityError(CachewrightError):
    """The policy asks an engine for something it cannot do."""


class VerifyError(CachewrightError):
    """An engine rejected the generated configuration."""

    exit_code = 1


class ToolMissing(CachewrightError):
    """A program the command needs (nginx, varnishd, hitch) is not installed."""

    exit_code = 3
