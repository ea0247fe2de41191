"""``cachewright schema``: a valid JSON Schema (Draft 2020-12) that accepts the project's policies,
rejects broken ones, and documents every field."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from cachewright.generator.load import loads
from cachewright.harness.cli import main
from cachewright.harness.commands.schema import json_schema

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(ROOT.glob("examples/*/policy.yaml"))

INLINE = """\
version: 1
name: shop
origin:
  url: [http://app1:8000, http://app2:8000]
  host_header: shop.example.com
  probe: {path: /health, interval: 5s}
listen:
  http: {port: 80}
  https:
    port: 443
    certificate: certs/shop.crt
    key: certs/shop.key
    redirect_http: true
    hsts: {max_age: 1y, include_subdomains: true}
    http2: true
  hosts: [shop.example.com, "*.shop.example.com"]
cache:
  size: 1g
  key: [scheme, host, path, query]
  query: {ignore: [utm_*, fbclid], sort: true}
  stale: {while_revalidate: 30s, if_error: 1h}
  status_ttl: {404: 1m}
rules:
  - name: static
    match: {path_prefix: /static/, extensions: [css, js]}
    ttl: 30d
    origin_headers: override
    strip_cookies: true
  - name: account
    match: {path_prefix: /account, cookie: {name: session}}
    cache: false
  - name: api
    match:
      path_regex: ^/api/v[0-9]+/
      header: [{name: X-Api-Version, regex: ^2}]
      methods: [GET, HEAD]
    ttl: 10s
    vary: [Accept-Language]
    key: {headers: [X-Tenant], cookies: [currency]}
    tags_from_header: Surrogate-Key
purge:
  allow: [127.0.0.1/32, 10.0.0.0/8]
  kinds: [url, pattern, tag]
headers: {cache_status: true}
accept_missing:
  nginx: [origin.probe, query.sort, purge.pattern, purge.tag]
"""


def _validator() -> Any:
    return jsonschema.Draft202012Validator(json_schema())


def _as_json(text: str) -> Any:
    """A policy as the JSON an editor validates (YAML's integer keys become strings)."""
    return json.loads(json.dumps(yaml.safe_load(text)))


def _policies() -> list[tuple[str, str]]:
    found = [(str(p.relative_to(ROOT)), p.read_text(encoding="utf-8")) for p in EXAMPLES]
    return found or [("inline policy", INLINE)]


def test_schema_is_valid_draft_2020_12() -> None:
    schema = json_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    jsonschema.Draft202012Validator.check_schema(schema)


@pytest.mark.parametrize(("name", "text"), _policies(), ids=[n for n, _ in _policies()])
def test_project_policies_validate(name: str, text: str) -> None:
    loads(text, name)  # the loader accepts it ...
    errors = sorted(_validator().iter_errors(_as_json(text)), key=str)
    assert not errors, f"{name}: " + "; ".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_inline_policy_validates() -> None:
    """Checked even once examples/ exists: it uses nearly every field."""
    _validator().validate(_as_json(INLINE))


@pytest.mark.parametrize(("change", "where"), [
    (lambda p: p["cache"].update(tll="10s"), "unknown key"),
    (lambda p: p["rules"][0].update(colour="red"), "unknown key in a list item"),
    (lambda p: p["cache"].update(collapse_requests="yes"), "string for a boolean"),
    (lambda p: p["rules"][0].update(ttl="ten seconds"), "not a duration"),
    (lambda p: p["listen"]["http"].update(port=0), "port out of range"),
    (lambda p: p["cache"].update(origin_headers="ignore"), "not an enum value"),
    (lambda p: p.update(rules={"name": "x"}), "mapping for a list"),
    (lambda p: p.pop("origin"), "missing required key"),
])
def test_broken_policies_fail(change: Any, where: str) -> None:
    policy = copy.deepcopy(_as_json(INLINE))
    change(policy)
    assert not _validator().is_valid(policy), where


def _properties(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every (path, subschema) under a ``properties`` keyword, recursively."""
    if isinstance(node, dict):
        for key, sub in node.get("properties", {}).items():
            yield f"{path}.{key}".lstrip("."), sub
        for key, value in node.items():
            if key == "properties":
                for name, sub in value.items():
                    yield from _properties(sub, f"{path}.{name}".lstrip("."))
            else:
                yield from _properties(value, path)
    elif isinstance(node, list):
        for item in node:
            yield from _properties(item, path)


def test_every_field_has_a_description() -> None:
    fields = list(_properties(json_schema()))
    assert len(fields) > 50
    undocumented = sorted({path for path, sub in fields if not str(sub.get("description", ""))
                           .strip()})
    assert not undocumented, f"fields without a description: {undocumented}"


def test_cli_prints_the_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(json_schema()))
