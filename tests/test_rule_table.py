"""The rule table every generated nginx.conf and default.vcl starts with (generator/ruletable.py).

Each table is read back from the generated text, and each row's line is checked in the same
file: on nginx the rule's named location, on Varnish the branch of the first-match chain that
selects it, in the subroutine the row names. For every example (every node of a fleet), a policy
of several VCL selection chunks, random policies, and rules whose values try to end the comment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from policies import policies, verify_files

from cachewright.generator import varnish_rules
from cachewright.generator.errors import PolicyError
from cachewright.generator.load import loads
from cachewright.generator.pipeline import compile_policy
from cachewright.generator.render import OutputFile

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(p.parent.name for p in (ROOT / "examples").glob("*/policy.yaml"))
TITLE = "# Rules, first match wins (line: where the rule's block starts in this file):"
BRANCH = re.compile(r"^\s*(?:if \(|\} elsif \(|\} else \{)")


@dataclass(frozen=True)
class Row:
    order: str
    name: str
    match: str
    ttl: str
    place: str
    line: int


def table(text: str) -> list[Row]:
    """The rows of ``text``'s table, cut at its column boundaries (the headings' positions)."""
    lines = text.split("\n")
    start = lines.index(TITLE)
    assert all(line.startswith("#") for line in lines[:start]), "the table follows the header"
    heading = lines[start + 1]
    columns = [heading.index(word) for word in ("order", "rule", "match", "ttl")]
    place = re.search(r"ttl +(\S)", heading)
    assert place is not None
    columns += [place.start(1), heading.rindex("line")]
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("#   "):
            break
        cells = [line[a:b].strip() for a, b in zip(columns, [*columns[1:], len(line)], strict=True)]
        rows.append(Row(*cells[:5], int(cells[5])))
    return rows


def check_nginx(text: str, rules: list[str]) -> None:
    lines = text.split("\n")
    rows = table(text)
    assert [r.name for r in rows] == [*rules, "default"]
    assert [r.order for r in rows] == [*(str(i) for i in range(1, len(rules) + 1)), "-"]
    for row in rows:
        first = row.place.split(", ")[0]
        assert lines[row.line - 1].strip() == f"location {first} {{", (row, lines[row.line - 1])
        assert lines[row.line - 2].strip().startswith(f"# cachewright: rule {row.name} ("), row


def check_vcl(text: str, rules: list[str]) -> None:
    lines = text.split("\n")
    rows = table(text)
    assert [r.name for r in rows] == [*rules, "default"]
    for row in rows:
        opener = lines[row.line - 1]
        sub = next(line for line in reversed(lines[:row.line]) if line.startswith("sub "))
        assert sub == f"sub {row.place.split()[0]} {{", (row, sub)
        assert BRANCH.match(opener) or opener.strip() == 'if (!var.get("rule")) {', (row, opener)
        body = lines[row.line:row.line + 3]
        assert f'    var.set("rule", "{row.name}");' in "\n".join(body), (row, opener, body)


def check_files(files: tuple[OutputFile, ...], rules: list[str]) -> int:
    """Every configuration's table checked; how many there were."""
    checked = 0
    for f in files:
        if f.path.endswith("nginx.conf"):
            check_nginx(f.text, rules)
        elif f.path.endswith("default.vcl"):
            check_vcl(f.text, rules)
        else:
            assert TITLE not in f.text, f.path
            continue
        checked += 1
    return checked


def rule_names(text: str) -> list[str]:
    return [r.name for r in loads(text, "p.yaml").rules]


@pytest.mark.parametrize("name", EXAMPLES)
def test_every_example_file_names_each_rules_line(name: str) -> None:
    source = ROOT / "examples" / name / "policy.yaml"
    policy = loads(source.read_bytes(), str(source))
    files = compile_policy(policy).files
    nodes = sum(len(t.nodes) for t in policy.fleet.tiers) if policy.fleet else 1
    assert check_files(files, [r.name for r in policy.rules]) == (nodes if policy.fleet else 2)


def _large(rules: int) -> str:
    body = "".join(f"  - name: s{i}\n    match: {{path_prefix: /s{i}/}}\n    ttl: {i % 3 + 1}m\n"
                   for i in range(rules))
    return ("version: 1\nname: large\norigin: {url: http://app:8000}\ncache: {query: {ignore: [utm_*]}}\n"
            "purge: {allow: [127.0.0.1/32]}\nrules:\n" + body)


def test_a_policy_of_several_selection_chunks() -> None:
    text = _large(varnish_rules.CHUNK * 2 + 5)
    files = compile_policy(loads(text, "large.yaml")).files
    assert check_files(files, rule_names(text)) == 2
    vcl = next(f.text for f in files if f.path == "varnish/default.vcl")
    places = {r.place for r in table(vcl)}
    assert {"cw_select_1 if", "cw_select_2 elsif", "cw_select_3 elsif", "vcl_recv if no rule"} <= places


def test_a_policy_without_rules() -> None:
    text = "version: 1\nname: bare\norigin: {url: http://app:8000}\n"
    assert check_files(compile_policy(loads(text, "bare.yaml")).files, []) == 2


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(text=policies())
def test_random_policies(text: str) -> None:
    try:
        policy = loads(text, "p.yaml")
    except PolicyError:
        assume(False)  # shadowed or contradicting rules (test_property checks the strategy)
        raise
    assert check_files(compile_policy(policy).files, [r.name for r in policy.rules]) == 2


# Values that try to end a comment or start a directive: load refuses line breaks and control
# characters; what it accepts stays on the table's line, cut where long.
HOSTILE = r"""version: 1
name: hostile
origin: {url: http://127.0.0.1:8000}
rules:
  - name: forged
    match: {path_regex: '^/a\*/ } # cachewright: rule ok (p.yaml:17:5)'}
    ttl: 1m
  - name: comment-end
    match:
      path_prefix: '/*/'
      header: [{name: X-A, regex: 'a*/ ; include /etc/passwd; #'}]
      cookie: [{name: '*x', regex: 'a"b'}]
    ttl: 1m
  - name: long-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx
    match: {path_regex: '^/0123456789012345678901234567890123456789012345678901234567890123456789'}
    ttl: 1m
  - name: ok
    match: {path_prefix: /ok/}
    ttl: 1m
"""


def test_hostile_values_stay_inside_the_table() -> None:
    files = compile_policy(loads(HOSTILE, "p.yaml")).files
    assert check_files(files, rule_names(HOSTILE)) == 2
    for f in files:
        if TITLE in f.text:
            rows = table(f.text)
            assert rows[0].match == r"regex ^/a\*/ } # cachewright: rule ok (p.yaml:17:5)"
            assert rows[1].match == 'prefix /*/; header X-A~a*/ ; include /etc/passwd; #; cook...'
            assert rows[2].match == "regex ^/" + "0123456789" * 4 + "0123456789"[:9] + "..."


def test_control_characters_are_escaped_never_written() -> None:
    from cachewright.generator.quote import comment_text

    assert comment_text("a\nb\r*/\x00\x7f\u00e9") == "a\\nb\\r*/\\x00\\x7f\\xe9"
    assert comment_text("x" * 70) == "x" * 57 + "..."


@pytest.mark.engine
def test_the_engines_read_the_hostile_tables_as_comments(tmp_path: Path) -> None:
    """nginx -t and varnishd -C accept the files: nothing in the table reached the directives."""
    assert verify_files(compile_policy(loads(HOSTILE, "p.yaml")).files, tmp_path) is None
