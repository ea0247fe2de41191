"""The committed docs cannot drift from the language and the capability table they describe."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from cachewright.generator import capabilities, docs, language
from cachewright.generator.load import loads
from cachewright.generator.spec import Obj

ROOT = Path(__file__).resolve().parent.parent
HOW = f"run `{docs.REGENERATE}` and commit the result"


@pytest.mark.parametrize("generated", docs.GENERATED, ids=lambda g: g.file)
def test_generated_section_is_up_to_date(generated: docs.Generated) -> None:
    text = (ROOT / generated.file).read_text(encoding="utf-8")
    committed = docs.generated_section(text, generated.markers)
    assert committed == generated.render().strip("\n"), (
        f"{generated.file} is out of date with the code it documents: {HOW}")


def test_check_reports_up_to_date() -> None:
    assert docs.stale(ROOT) == [], HOW


def _all_paths(obj: Obj, path: str = "") -> list[str]:
    out = []
    for section in docs.sections(obj, path):
        out += [f"{section.path}.{k}" if section.path else k for k in section.obj.fields]
    return out


def test_reference_lists_every_field() -> None:
    reference = docs.policy_reference()
    paths = _all_paths(language.POLICY)
    assert "cache.stale.while_revalidate" in paths
    assert "rules[].match.header[].regex" in paths
    for path in paths:
        assert f"| `{path}` |" in reference, path


def test_reference_row_for_a_field() -> None:
    row = next(line for line in docs.policy_reference().splitlines()
               if line.startswith("| `cache.stale.while_revalidate` |"))
    cells = [c.strip() for c in row.strip("|").split(" | ")]
    assert cells[1] == "duration"
    assert cells[2] == "`0s`"
    assert cells[5].startswith("`proxy_cache_use_stale updating`")
    assert cells[6] == "`beresp.grace`"


def test_reference_marks_required_and_absent() -> None:
    lines = docs.policy_reference().splitlines()
    version = next(line for line in lines if line.startswith("| `version` |"))
    assert "**required**" in version
    probe = next(line for line in lines if line.startswith("| `origin.probe.interval` |"))
    assert "| — | `.interval` |" in probe  # no nginx mapping → a dash


def test_every_table_row_has_seven_cells() -> None:
    for line in docs.policy_reference().splitlines():
        if line.startswith("| `"):
            cells = re.split(r"(?<!\\)\|", line.strip()[1:-1])
            assert len(cells) == 7, line


def test_capabilities_table_lists_every_feature() -> None:
    table = docs.capabilities_table()
    for feature in capabilities.TABLE:
        row = next(line for line in table.splitlines() if line.startswith(f"| `{feature.id}` |"))
        assert f"**{feature.nginx.level}**" in row
        assert f"**{feature.varnish.level}**" in row


def test_regenerate_rewrites_only_the_generated_section(tmp_path: Path) -> None:
    for g in docs.GENERATED:
        (tmp_path / g.file).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(ROOT / g.file, tmp_path / g.file)
    page = tmp_path / "docs" / "policy.md"
    begin, end = docs.REFERENCE_MARKERS
    original = page.read_text(encoding="utf-8")
    page.write_text(original.replace(begin, f"{begin}\nstale text\n"), encoding="utf-8")
    assert docs.main(["--root", str(tmp_path), "--check"]) == 1
    assert docs.main(["--root", str(tmp_path)]) == 0
    assert page.read_text(encoding="utf-8") == original
    assert docs.main(["--root", str(tmp_path), "--check"]) == 0


def test_missing_markers_are_an_error(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    for g in docs.GENERATED:
        (tmp_path / g.file).write_text("# no markers\n", encoding="utf-8")
    assert docs.main(["--root", str(tmp_path)]) == 2


def test_policy_page_example_is_a_valid_policy() -> None:
    """The annotated example in docs/policy.md loads (so the page cannot teach invalid YAML)."""
    text = (ROOT / "docs" / "policy.md").read_text(encoding="utf-8")
    example = re.search(r"```yaml\n(.*?)```", text, re.DOTALL)
    assert example, "docs/policy.md has no ```yaml example"
    policy = loads(example.group(1), "docs/policy.md")
    assert [r.name for r in policy.rules] == ["static", "account", "api"]
