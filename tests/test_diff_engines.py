"""``cachewright diff --verify-engines`` on the real engines (local processes): the predicted
changes of the four kinds of edit are what nginx and Varnish do, OLD and NEW side by side; a
prediction that is wrong is reported (exit 1)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
from corpus import sample_seed
from diffedits import KINDS, SINGLE_NODE, Edit, candidates, diffed, example, write_edited

from cachewright.harness.cli import main
from cachewright.harness.diffing.compare import DiffResult
from cachewright.harness.diffing.replay import replay

pytestmark = pytest.mark.engine

#: the example whose edits the engines replay here: a rotating one, drawn by the run's seed
#: (``$CACHEWRIGHT_CORPUS_SEED``, printed in the session header); benchmarks/diff/run.py
#: replays every example's
ROTATED = SINGLE_NODE[sample_seed() % len(SINGLE_NODE)]
#: the example of the tests that need a particular rule
EXAMPLE = "static-site"


def changing_edit(name: str, kind: str, folder: Path) -> tuple[Edit, DiffResult] | None:
    """The first edit of ``kind`` to example ``name`` that changes some request (None: no edit
    of that kind changes any, e.g. a move where no rules overlap)."""
    for edit in candidates(example(name), kind):
        result, _ = diffed(example(name), write_edited(example(name), edit, folder))
        if result.changed:
            return edit, result
    return None


@pytest.mark.parametrize("kind", KINDS)
def test_the_engines_do_what_diff_predicts(kind: str, tmp_path: Path) -> None:
    found = changing_edit(ROTATED, kind, tmp_path)
    if found is None:  # shop: no two rules overlap, so no move changes a request
        assert (ROTATED, kind) == ("shop", "move"), f"{ROTATED}: no {kind} edit changes a request"
        return
    _, result = found
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
