"""Workflow-command annotations: the runner's format, and no way for a value to break out."""

from __future__ import annotations

import pytest

from cachewright.harness.report.github import Annotation, render


def test_an_annotation_names_file_line_and_column() -> None:
    a = Annotation("error", "ttl: expected a duration", file="p.yaml", line=3, col=7, title="policy")
    assert a.command() == "::error file=p.yaml,line=3,col=7,title=policy::ttl: expected a duration"


def test_a_whole_file_annotation_has_no_line() -> None:
    assert Annotation("warning", "stale", file="p.yaml").command() == "::warning file=p.yaml::stale"
    assert Annotation("notice", "changed").command() == "::notice::changed"


def test_newlines_and_separators_cannot_start_another_command() -> None:
    hostile = Annotation("error", "a\n::error::forged%", file="x,line=1:y", title="t\r\n")
    text = render([hostile])
    assert text.count("\n") == 1 and text.endswith("\n")
    assert text == "::error file=x%2Cline=1%3Ay,title=t%0D%0A::a%0A::error::forged%25\n"


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="debugx"):
        Annotation("debugx", "m")
