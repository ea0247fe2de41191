"""``cachewright diff``'s model: no change between identical policies, and exactly the requests a
planted edit changes (a TTL, a rule moved above another, a key cookie added, a rule deleted) on
the single-node examples, judged by an oracle that reads rule selection, not diff's fields."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from diffedits import (
    KINDS,
    SINGLE_NODE,
    Edit,
    candidates,
    diffed,
    example,
    expected,
    loads_ok,
    random_edit,
    write_edited,
)

from cachewright.generator.load import load
from cachewright.harness.diffing.compare import layout

#: the field each kind of edit must show in every request it changes
FIELD = {"ttl": "ttl", "key-cookie": "key", "delete": "rule", "move": "rule"}
#: edits tried per example and kind (spread over the candidates; the random test draws others)
PER_KIND = 5


@pytest.mark.parametrize("name", [*SINGLE_NODE, "fleet-shard", "fleet-shield"])
def test_identical_policies_differ_in_nothing(name: str) -> None:
    result, probes = diffed(example(name), example(name))
    assert len(probes) >= 3
    assert result.changed == () and result.layout == ()


@pytest.mark.parametrize("name", SINGLE_NODE)
def test_a_dumped_copy_differs_in_nothing(name: str, tmp_path: Path) -> None:
    """Loading and dumping the YAML (another layout, other line numbers) changes no request."""
    copy = write_edited(example(name), Edit("none", load(example(name)).rules[0].name), tmp_path)
    result, _ = diffed(example(name), copy)
    assert result.changed == ()


def check_edit(name: str, edit: Edit, folder: Path) -> int:
    """Diff ``name`` against a copy with ``edit``: exactly the oracle's requests change, each
    showing the edit's field; returns how many."""
    edited = write_edited(example(name), edit, folder)
    assert loads_ok(edited), edit
    result, probes = diffed(example(name), edited)
    want = expected(edit, load(example(name)), load(edited), probes)
    got = {item.probe.request for item in result.changed}
    assert got == want, (edit, sorted(r.target for r in got ^ want))
    for item in result.changed:
        assert FIELD[edit.kind] in {c.field for c in item.changes}, (edit, item.shown, item.changes)
    return len(got)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("name", SINGLE_NODE)
def test_a_planted_edit_changes_exactly_its_requests(name: str, kind: str, tmp_path: Path) -> None:
    edits = candidates(example(name), kind)
    if kind == "move" and name == "shop":
        assert edits  # shop's rules never overlap: a move is planted and must change nothing
    assert edits
    found = [check_edit(name, edit, tmp_path) for edit in edits[::-(-len(edits) // PER_KIND)]]
    if kind != "move":
        assert all(found), found  # every planted change is found
    else:
        assert any(found) or name == "shop", found


@pytest.mark.parametrize("seed", range(8))
def test_random_single_edits(seed: int, tmp_path: Path) -> None:
    """Property-style: a random example, a random kind of edit on a random rule."""
    rng = random.Random(seed)
    drawn = None
    while drawn is None:
        drawn = random_edit(rng)
    name, edit = drawn
    check_edit(name, edit, tmp_path)


def test_a_ttl_change_reads_old_to_new(tmp_path: Path) -> None:
    edited = write_edited(example("shop"), Edit("ttl", "products"), tmp_path)
    result, _ = diffed(example("shop"), edited)
    change = result.changed[0].changes[0]
    assert (change.field, change.engines) == ("ttl", ("nginx", "varnish"))
    assert change.narrowed() == ("without them: 10m (the rule's ttl) for 200 203 204 300 301 308",
                                 "without them: 17m (the rule's ttl) for 200 203 204 300 301 308")


def test_purge_reach_is_per_engine(tmp_path: Path) -> None:
    """Dropping tags_from_header changes purge reach on Varnish only: nginx has no tag purge."""
    raw_edit = example("shop").read_text().replace(
        "    vary: [Accept-Language]\n    tags_from_header: Surrogate-Key\n",
        "    vary: [Accept-Language]\n")
    edited = tmp_path / "policy.yaml"
    edited.write_text(raw_edit)
    result, _ = diffed(example("shop"), edited)
    assert {item.rule("new") for item in result.changed} == {"products"}
    changes = {c.field: c for item in result.changed for c in item.changes}
    assert changes["purge reach"].engines == ("varnish",)
    assert changes["purge reach"].narrowed() == (
        "url, tag (Surrogate-Key) from 127.0.0.1/32, 10.0.0.0/8", "url from 127.0.0.1/32, 10.0.0.0/8")


def test_fleet_layout_nodes_added_and_removed() -> None:
    old = load(example("fleet-shard")).fleet
    assert old is not None
    from dataclasses import replace

    tier = old.tiers[-1]
    fewer = replace(old, tiers=(*old.tiers[:-1], replace(tier, nodes=tier.nodes[1:])))
    assert layout(old, fewer) == (f"tier {tier.name}: node {tier.nodes[0].name} "
                                  f"({tier.nodes[0].address}) removed",)
    assert layout(fewer, old)[0].endswith("added")
    assert layout(old, old) == ()


def test_https_with_a_redirect_added(tmp_path: Path) -> None:
    """Each request is compared on each policy's default scheme: plain HTTP now redirects, and
    HTTPS (not served before) caches by the rule; an unforwarded request shows no origin details."""
    base = ("version: 1\nname: t\norigin: {url: http://app:8000}\nlisten:\n  http: {port: 80}\n{https}"
            "rules:\n  - {name: pages, match: {path_prefix: /}, ttl: 5m}\n")
    old, new = tmp_path / "old.yaml", tmp_path / "new.yaml"
    old.write_text(base.replace("{https}", ""))
    new.write_text(base.replace("{https}", "  https: {port: 443, certificate: c.crt, key: c.key, "
                                           "redirect_http: true}\n"))
    result, _ = diffed(old, new)
    changes = {(item.scheme, c.field): c.narrowed() for item in result.changed for c in item.changes}
    assert {s for s, _ in changes} == {"http", "https"}
    assert changes["http", "verdict"] == ("cached", "redirect (301)")
    assert changes["http", "origin request"][1] == "(none: not forwarded)"
    assert ("http", "origin cookie") not in changes
    assert changes["https", "verdict"] == ("not served (the policy has no https listener)", "cached")
