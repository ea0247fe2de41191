"""``cachewright init``: write a commented starter policy for a common kind of site."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import HELP

ARCHETYPES = {
    "static": "a static site: long-lived assets, short HTML, tracking parameters ignored",
    "api": "a JSON API: short TTLs, stale-while-revalidate, per-token caching, no writes cached",
    "cms": "a CMS (WordPress-like): admin and logged-in users bypass, anonymous pages cached",
    "shop": "a shop behind HTTPS: cart/checkout bypass, currency cookie in the key",
}
DEFAULT_ARCHETYPE = "static"


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``init`` on the ``cachewright`` subparsers."""
    kinds = "\n".join(f"  {name:7} {what}" for name, what in ARCHETYPES.items())
    p = sub.add_parser(
        "init", help=HELP["init"],
        description="Write a commented starter policy to edit, then compile and test.\n\n"
                    f"archetypes:\n{kinds}",
        epilog="examples:\n  cachewright init                       # policy.yaml, static site\n"
               "  cachewright init --archetype shop -o shop.yaml\n"
               "  cachewright init --archetype api --force  # overwrite policy.yaml\n"
               "  cachewright init -o -                    # print to stdout",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--archetype", choices=tuple(ARCHETYPES), default=DEFAULT_ARCHETYPE,
                   help=f"kind of site (default: {DEFAULT_ARCHETYPE})")
    p.add_argument("-o", "--output", default="policy.yaml", metavar="FILE",
                   help="where to write the policy ('-': stdout; default: policy.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite FILE if it exists")
    p.set_defaults(run=run)


def archetype_text(name: str) -> str:
    """The starter policy of archetype ``name`` (a file shipped in ``harness/archetypes``)."""
    if name not in ARCHETYPES:
        raise KeyError(f"unknown archetype {name!r} (expected one of {', '.join(ARCHETYPES)})")
    from importlib import resources

    return (resources.files("cachewright.harness.archetypes") / f"{name}.yaml").read_text(encoding="utf-8")


def run(args: argparse.Namespace) -> int:
    """Write the archetype; exit 2 (nothing written) when the file exists and no --force."""
    text = archetype_text(args.archetype)
    if args.output == "-":
        sys.stdout.write(text)
        return 0
    target = Path(args.output)
    if target.exists() and not args.force:
        print(f"{target}: already exists (use --force to overwrite it)", file=sys.stderr)
        return 2
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target} ({args.archetype}); next:\n"
          f"  cachewright compile {target} -o cachewright-out/ --verify\n"
          f"  cachewright test {target}\n"
          f"  cachewright explain {target} GET /")
    return 0
