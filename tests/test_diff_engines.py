"""``cachewright diff --verify-engines`` on the real engines (local processes): the predicted
changes of the four kinds of edit are what nginx and Varnish do, OLD and NEW side by side; a
prediction that is wrong is reported (exit 1)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from diffedits import KINDS, candidates, diffed, example, write_edited

from cachewright.harness.cli import main
from cachewright.harness.diffing.replay import replay

pytestmark = pytest.mark.engine

#: the example whose edits are replayed, and the edit of each kind (first of the candidates)
EXAMPLE = "static-site"


@pytest.mark.parametrize("kind", KINDS)
def test_the_engines_do_what_diff_predicts(kind: str, tmp_path: Path) -> None:
    edit = candidates(example(EXAMPLE), kind)[0]
    result, _ = diffed(example(EXAMPLE), write_edited(example(EXAMPLE), edit, tmp_path))
    assert result.changed
    verdicts = replay(result)
    assert len(verdicts) == len(result.changed) * 4  # x old, new x nginx, varnish
    assert [v for v in verdicts if not v.agrees] == []
    assert {(v.side, v.engine) for v in verdicts} == {(s, e) for s in ("old", "new")
                                                      for e in ("nginx", "varnish")}


def test_a_verdict_change_is_confirmed_through_the_cli(tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """shop, cart deleted: /cart/... was never cached and now is (by the default rule), over
    HTTPS through both engines."""
    edit = next(e for e in candidates(example("shop"), "delete") if e.rule == "cart")
    edited = write_edited(example("shop"), edit, tmp_path)
    assert main(["diff", str(example("shop")), str(edited), "--verify-engines"]) == 0
    out = capsys.readouterr().out
    assert "  verdict       bypass → cached\n" in out
    assert out.endswith("engines:\n  4 of 4 replays (changed requests x old, new x nginx, varnish) "
                        "do what was predicted\n")


def test_a_wrong_prediction_is_a_disagreement(tmp_path: Path) -> None:
    """The prediction for NEW replayed against OLD's engines (the sides swapped under it):
    every replay on that side disagrees on the rule."""
    edit = next(e for e in candidates(example(EXAMPLE), "delete") if e.rule == "media")
    result, _ = diffed(example(EXAMPLE), write_edited(example(EXAMPLE), edit, tmp_path))
    verdicts = replay(replace(result, new=result.old))
    wrong = [v for v in verdicts if not v.agrees]
    assert {(v.side, v.engine) for v in wrong} == {("new", "nginx"), ("new", "varnish")}
    assert all(v.predicted.endswith("detail=html") and v.observed.endswith("detail=media")
               for v in wrong)
