"""Messages about what the user wrote stay one positioned, printable line each, whatever the
policy holds: mapping keys with line breaks or control characters, and characters YAML forbids
(both found by ``tests/test_fuzz.py``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cachewright.generator.errors import PolicyError
from cachewright.generator.load import loads
from cachewright.generator.yamlnode import reader_problem
from cachewright.harness.cli import main

BASE = "version: 1\nname: x\norigin: {url: http://app:8000}\n"
EXPECTED_KEYS = "version, name, origin, listen, cache, rules, purge, headers, accept_missing, nginx, fleet"


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as info:
        loads(text, "p.yaml")
    lines = str(info.value).splitlines()
    assert all(line.startswith("p.yaml:") and line.isprintable() for line in lines), lines
    return lines


def test_a_key_with_a_line_break_is_escaped() -> None:
    assert problems(BASE + '? "a\\nb"\n: 1\n') == [
        f"p.yaml:4:3: a\\nb: unknown key 'a\\nb' (expected one of: {EXPECTED_KEYS})"]


@pytest.mark.parametrize(("key", "escaped"), [
    ("\\x1b[31m", "\\x1b[31m"), ("\\x85", "\\x85"), ("\\u2028", "\\u2028"), ("\\u202e", "\\u202e"),
    ("\\x00", "\\x00")])
def test_unprintable_keys_are_escaped_in_path_and_message(key: str, escaped: str) -> None:
    (found,) = problems(BASE + f'"{key}": 1\n')
    assert found == f"p.yaml:4:1: {escaped}: unknown key '{escaped}' (expected one of: {EXPECTED_KEYS})"


def test_a_nested_key_is_escaped_in_the_path() -> None:
    text = BASE + 'rules:\n  - name: a\n    match: {path_prefix: /a}\n    "t\\rtl": 1m\n'
    assert problems(text) == [
        "p.yaml:7:5: rules[0].t\\rtl: unknown key 't\\rtl' (did you mean 'ttl'?)"]


def test_a_status_ttl_key_is_escaped_in_the_path_of_its_value() -> None:
    found = problems(BASE + 'cache:\n  status_ttl:\n    "4\\n04": soon\n')
    assert found == [
        'p.yaml:6:5: cache.status_ttl: "4\\n04" is not an integer from 100 to 599',
        'p.yaml:6:14: cache.status_ttl.4\\n04: "soon" is not a duration (examples: 10s, 5m, 1h30m, 30d)']


def test_a_control_character_in_the_text_is_positioned() -> None:
    assert problems("name: a\x07b\n") == [
        'p.yaml:1:8: invalid YAML: unprintable character #x0007 (expected printable text; inside '
        'double quotes write it as "\\x07")']


@pytest.mark.parametrize(("text", "where"), [
    ("a: é\nname: éé\x07\n", "2:9"),              # libyaml counts bytes: é is two
    ("a: \U0001f600\r\nb: \x00\n", "2:4"),        # CRLF is one line break
    ("\ufeffa: 1\nb: [\ufffe]\n", "2:5"),         # a byte-order mark is not a column
])
def test_the_position_of_a_forbidden_character_is_its_line_and_column(text: str, where: str) -> None:
    (found,) = problems(text)
    assert found.startswith(f"p.yaml:{where}: invalid YAML: unprintable character #x")


def test_pyyaml_reader_positions_count_characters() -> None:
    text = "a: é\nname: éé\x07\n"
    with pytest.raises(yaml.reader.ReaderError) as info:
        yaml.compose(text, Loader=yaml.SafeLoader)
    problem = reader_problem(text, info.value, "p.yaml", yaml.SafeLoader)
    assert (problem.line, problem.col) == (2, 9)


def test_a_control_character_exits_2_without_traceback(tmp_path: Path,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_bytes(BASE.encode() + b"cache: {default_ttl: 1\x07m}\n")
    assert main(["compile", str(policy), "-o", str(tmp_path / "cachewright-out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{policy}:4:23: invalid YAML: unprintable character #x0007 ")
    assert "\x07" not in err and "Traceback" not in err


@pytest.mark.parametrize(("origin", "expected"), [
    ("origin:\n  url: ftp://app:21\n",
     'p.yaml:4:8: origin.url: "ftp://app:21": scheme "ftp" is not supported (expected '
     'http://host[:port] or https://host[:port], e.g. http://app:8000)'),
    ("origin:\n  url: https://app/api\n",
     'p.yaml:4:8: origin.url: "https://app/api" has a path or query ("/api"); an origin URL names '
     'a server only (requests keep their own path; expected http://host[:port] or '
     'https://host[:port], e.g. http://app:8000)'),
    ("origin:\n  url: https://app\n  tls:\n    ca: certs/nowhere.pem\n",
     "p.yaml:6:5: origin.tls.ca: cannot read certs/nowhere.pem (No such file or directory; a "
     "relative path is read beside the policy file)"),
])
def test_https_origin_errors_are_one_positioned_line(origin: str, expected: str) -> None:
    assert problems("version: 1\nname: x\n" + origin) == [expected]


def test_an_unreadable_ca_exits_2_naming_where_it_was_looked_for(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nname: x\norigin: {url: 'https://app', tls: {ca: ca.pem}}\n")
    assert main(["compile", str(policy), "-o", str(tmp_path / "cachewright-out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{policy}:3:36: origin.tls.ca: cannot read {tmp_path}/ca.pem (No such "
                          "file or directory; a relative path is read beside the policy file)")
    assert "Traceback" not in err


@pytest.mark.parametrize(("regex", "message"), [
    ("a\\\\v", "\\v is a vertical tab in Python but any vertical space in PCRE (write \\x0b)"),
    ("a{,3}", "{,n} is literal text in PCRE2 but a repeat in Python (write {0,n})"),
    ("(a)\\\\1", "back-references are not supported (a rule matches a path or a value, never a capture)"),
    ("[[:alpha:]]", "POSIX classes such as [:alpha:] inside [...] are read differently by PCRE and "
                    "Python (write the characters, e.g. [a-zA-Z])"),
])
def test_a_regex_outside_the_dialect_says_why_where(regex: str, message: str) -> None:
    text = BASE + f'rules:\n  - {{name: a, match: {{path_regex: "{regex}"}}}}\n'
    assert problems(text) == [f"p.yaml:5:35: rules[0].match.path_regex: {message}"]
