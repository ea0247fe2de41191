"""Every example's output is accepted by the real engines (nginx -t, varnishd -C, hitch --test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cachewright.generator.fleet import verify_nodes
from cachewright.generator.load import load
from cachewright.generator.pipeline import compile_policy
from cachewright.harness.engines.verify import unresolvable, verify

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").glob("*/policy.yaml"))


@pytest.mark.engine
@pytest.mark.parametrize("policy_file", EXAMPLES, ids=lambda p: p.parent.name)
def test_engines_accept_example(policy_file: Path) -> None:
    policy = load(policy_file)
    files = compile_policy(policy).files
    hosts = unresolvable(s.host for s in policy.origin.servers)
    # a fleet's nodes each on their own (generator/fleet.py)
    done = verify_nodes(files, policy.fleet, lambda own: verify(own, policy_file.parent, hosts))
    engines = {d.engine for d in done}
    assert {"nginx", "varnish"} <= engines
    if policy.listen.https and policy.fleet is None:  # a fleet's edges here are nginx
        assert "hitch" in engines
