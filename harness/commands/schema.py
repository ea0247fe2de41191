"""``cachewright schema``: the policy language as JSON Schema (for editors and CI)."""

from __future__ import annotations

import argparse
from typing import Any

from . import HELP


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "schema", help=HELP["schema"],
        epilog="example:\n  cachewright schema > cachewright.schema.json\n"
               "  # then in policy.yaml: # yaml-language-server: $schema=cachewright.schema.json",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.set_defaults(run=run)


def json_schema() -> dict[str, Any]:
    from cachewright.generator.language import POLICY

    schema = POLICY.schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "$id": "https://cachewright.dev/schema/policy-v1.json",
            "title": "cachewright policy v1", **schema}


def run(args: argparse.Namespace) -> int:
    import json

    print(json.dumps(json_schema(), indent=2, sort_keys=True))
    return 0
