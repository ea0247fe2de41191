"""Property tests over random valid policies (``tests/policies.py`` builds them as YAML text):
each compiles for both engines, deterministically (also across processes with other hash seeds),
reads back cleanly (crossplane; the VCL lexer), and the real engines accept every output.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from policies import (
    WORKERS,
    nginx_directives,
    nginx_tree,
    policies,
    vcl_declarations,
    vcl_tokens,
    verify_files,
)

from cachewright.generator.errors import PolicyError
from cachewright.generator.load import loads
from cachewright.generator.lower_varnish import TARGET_CHECK, TARGET_SUSPECT
from cachewright.generator.model import Policy
from cachewright.generator.pipeline import Compiled, compile_policy

FILENAME = "property.yaml"
POLICY_DIR = Path(__file__).resolve().parent
EXAMPLES = 200
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])
# Rejections a random policy may legitimately meet: rules made unreachable by earlier ones.
DISCARDED = ("can never match", "contradicts")


def load_valid(text: str) -> Policy:
    """The policy, or the example is discarded if only shadowed/contradicting rules spoil it."""
    try:
        return loads(text, FILENAME)
    except PolicyError as exc:
        assume(not all(any(d in p.message for d in DISCARDED) for p in exc.problems))
        raise AssertionError(f"a policy the strategy meant as valid was refused:\n{exc}\n"
                             f"--- policy ---\n{text}") from None


def digest(compiled: Compiled) -> str:
    return hashlib.sha256(json.dumps([(f.path, f.text, f.mode) for f in compiled.files])
                          .encode()).hexdigest()


def check_read_back(compiled: Compiled) -> None:
    """Every file is there and parses: nginx with crossplane, VCL with no stray quote/C code."""
    paths = {f.path for f in compiled.files}
    assert {"nginx/nginx.conf", "varnish/default.vcl", "varnish/varnishd.args"} <= paths
    texts = {f.path: f.text for f in compiled.files}
    tree = nginx_tree(texts["nginx/nginx.conf"])
    assert nginx_directives(tree)["server"] >= 1
    tokens = vcl_tokens(texts["varnish/default.vcl"])
    assert ("OP", '"') not in tokens, "unterminated VCL string"
    declarations = vcl_declarations(tokens)
    assert declarations["vcl"] == 1 and declarations["C{"] == 0 and declarations["include"] == 0


def test_random_policies_compile_deterministically() -> None:
    """Random valid policies compile for both targets; compiling again (also from a fresh load,
    and in processes with other PYTHONHASHSEEDs) gives byte-identical files."""
    seen: dict[str, str] = {}

    @SETTINGS
    @given(text=policies())
    def run(text: str) -> None:
        policy = load_valid(text)
        first = compile_policy(policy)
        assert compile_policy(policy) == first
        assert compile_policy(loads(text, FILENAME)) == first
        check_read_back(first)
        seen[text] = digest(first)

    run()
    assert len(seen) >= EXAMPLES // 2
    script = textwrap.dedent("""
        import hashlib, json, sys
        from cachewright.generator.load import loads
        from cachewright.generator.pipeline import compile_policy
        for text in json.load(sys.stdin):
            files = compile_policy(loads(text, "property.yaml")).files
            blob = json.dumps([(f.path, f.text, f.mode) for f in files]).encode()
            print(hashlib.sha256(blob).hexdigest())
    """)
    texts = list(seen)
    for seed in ("0", "4242"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        result = subprocess.run([sys.executable, "-c", script], input=json.dumps(texts),
                                capture_output=True, text=True, env=env, check=False,
                                cwd=POLICY_DIR.parent, timeout=300)
        assert result.returncode == 0, result.stderr
        other = result.stdout.split()
        differ = [t for t, d in zip(texts, other, strict=True) if seen[t] != d]
        assert not differ, f"PYTHONHASHSEED={seed} compiles differently:\n{differ[0]}"


@pytest.mark.engine
@pytest.mark.slow
def test_random_policies_pass_the_real_engines() -> None:
    """nginx -t, varnishd -C and hitch --test accept what every random valid policy compiles to.
    The engine checks run in a pool while hypothesis generates (one varnishd -C is ~0.5 s)."""
    pending: dict[str, tuple[str, Future[str | None]]] = {}
    with ThreadPoolExecutor(max_workers=WORKERS) as pool:

        @SETTINGS
        @given(text=policies())
        def run(text: str) -> None:
            compiled = compile_policy(load_valid(text))
            key = digest(compiled)
            if key not in pending:
                pending[key] = (text, pool.submit(verify_files, compiled.files, POLICY_DIR))

        run()
    kinds: dict[str, list[tuple[str, str]]] = {}
    for text, future in pending.values():
        message = future.result()
        if message:
            kinds.setdefault(_kind(message), []).append((text, message))
    report = "\n\n".join(
        f"=== {len(found)} x {kind}\n--- smallest such policy ---\n{text}--- engines ---\n{msg}"
        for kind, found in kinds.items()
        for text, msg in [min(found, key=lambda f: len(f[0]))])
    assert not kinds, f"the engines rejected policies ({len(pending)} checked):\n{report}"
    assert len(pending) >= EXAMPLES // 2


def _kind(message: str) -> str:
    """The engine's complaint without file names, line numbers and values: one line per cause."""
    lines = [line for line in message.splitlines()[1:] if line.strip()]
    first = next((line for line in lines if "Could not delete" not in line), message)
    return re.sub(r"(/tmp/\S+|'[^']*'|\"[^\"]*\"|\d+)", "…", first)[:160]


@settings(max_examples=3000, deadline=None, database=None)
@given(st.text(alphabet="/.%\\?#:abe2ECF05-7", max_size=14))
def test_every_target_the_varnish_hygiene_regex_refuses_is_a_suspect(target: str) -> None:
    """The VCL runs TARGET_CHECK only for targets not starting with "/" or holding one of
    TARGET_SUSPECT: a target the regex would refuse must never skip it."""
    if re.search(TARGET_CHECK, target):
        assert not target.startswith("/") or any(s in target for s in TARGET_SUSPECT), target
