"""Compile benchmark: how long ``cachewright compile`` takes, and how much memory it needs, for
policies of 10 to 10000 rules; plus the real engines' verdict on the 1000-rule output.

Run from the repository root::

    python benchmarks/compile/run.py                 # 10, 100, 1000, 10000 rules, 5 runs each
    python benchmarks/compile/run.py --write-docs    # also rewrite docs/benchmarks.md
    python benchmarks/compile/run.py --ref HEAD      # measure a commit (git archive), not the tree
    python benchmarks/compile/run.py --profile 1000  # cProfile one in-process compile

Each measurement is one whole process, ``python -m cachewright.harness compile POLICY -o DIR`` (both
targets), as CI runs it: interpreter start, imports, load + validation, lowering, rendering and
writing. Peak RSS and CPU time (user + system, less moved by other load on a shared machine
than wall time) come from ``wait4()`` for that child alone. Start-up (issue 22) is measured the
same way: ``python -m cachewright.harness --version``, what a pre-commit hook pays per call before
any work, against its target, and the 1000-rule compile against its own.

The children run with bytecode, as an installed cachewright does: ``PYTHONDONTWRITEBYTECODE`` is
dropped from their environment and ``PYTHONPYCACHEPREFIX`` points into the benchmark's temporary
directory (nothing is written into the tree), and one unmeasured compile fills it first. Without
bytecode every run compiles each imported module from source again (about 0.15 s here). The
compiled templates are kept there too (``XDG_CACHE_HOME``), as a user's cache folder keeps them.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SIZES = (10, 100, 1000, 10000)
LARGE = 10000  # sizes from here on take minutes per run: --repeat-large runs
VERIFY_SIZE = 1000
TARGET_SECONDS = 1.0
TARGET_MB = 100.0
STARTUP_TARGET = 0.1  # `cachewright --version`, whole process (issue 22)
COMPILE_TARGET = 0.3  # `cachewright compile` of 1000 rules, whole process (issue 22)
STARTUP_RUNS = 5
PACKAGES = ("generator", "harness", "templates")  # the folders that are cachewright.<name>
DOCS = ROOT / "docs" / "benchmarks.md"

HEADER = """\
version: 1
name: bench
origin:
  url: http://127.0.0.1:8000
  host_header: shop.example.com
listen:
  http: {port: 8080}
cache:
  size: 1g
  query: {ignore: [utm_*, fbclid, gclid]}
  stale: {while_revalidate: 30s, if_error: 1h}
  status_ttl: {404: 1m, 410: 10m}
  default_ttl: 1m
purge:
  allow: [127.0.0.1/32, 10.0.0.0/8]
  kinds: [url]
rules:
"""
TTLS = ("10s", "30s", "1m", "5m", "10m", "1h", "6h", "1d", "7d", "30d")


def rule(i: int) -> str:
    """Rule ``i`` of a realistic mix; every rule has its own path prefix, regex or host, so no rule
    shadows another (the loader rejects a rule an earlier one covers)."""
    ttl = TTLS[i % len(TTLS)]
    kind = i % 50
    if kind < 5:  # 10%: regex paths
        return (f"  - name: regex{i}\n    match: {{path_regex: '^/p{i}/[0-9]+(?:/[a-z-]+)?$'}}\n"
                f"    ttl: {ttl}\n")
    if kind < 9:  # 8%: static assets by extension, cookies stripped
        return (f"  - name: assets{i}\n    match: {{path_prefix: /assets{i}/, "
                f"extensions: [css, js, png, woff2]}}\n    ttl: 30d\n"
                f"    origin_headers: override\n    strip_cookies: true\n")
    if kind < 12:  # 6%: API versions by header, varying on language
        return (f"  - name: api{i}\n    match:\n      path_prefix: /api{i}/\n"
                f"      header: {{name: X-Api-Version, regex: '^2'}}\n"
                f"    ttl: {ttl}\n    vary: [Accept-Language]\n")
    if kind < 14:  # 4%: logged-in areas by cookie, never cached
        return (f"  - name: account{i}\n    match:\n      path_prefix: /account{i}/\n"
                f"      cookie: {{name: session}}\n    cache: false\n")
    if kind < 15:  # 2%: per-host rules
        return (f"  - name: host{i}\n    match: {{host: h{i}.example.com, path_prefix: /}}\n"
                f"    ttl: {ttl}\n")
    if kind < 17:  # 4%: keyed on a header and a cookie
        return (f"  - name: keyed{i}\n    match: {{path_prefix: /keyed{i}/, methods: [GET, HEAD]}}\n"
                f"    ttl: {ttl}\n    key: {{headers: [X-Tenant], cookies: [currency]}}\n")
    # 66%: plain path prefixes
    return f"  - name: section{i}\n    match: {{path_prefix: /section{i}/}}\n    ttl: {ttl}\n"


def policy(rules: int) -> str:
    return HEADER + "".join(rule(i) for i in range(rules))


@dataclass(frozen=True)
class Run:
    seconds: float
    cpu_seconds: float
    max_rss_mb: float
    output_bytes: int


def environment(tree: Path, bytecode: Path) -> dict[str, str]:
    """What makes ``python -m cachewright.harness`` run ``tree``'s code with bytecode kept under
    ``bytecode``: for an extracted commit, a ``cachewright`` folder of links to its packages,
    first on PYTHONPATH (ahead of the editable install, which maps the namespace to the working
    tree)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(bytecode)
    env["XDG_CACHE_HOME"] = str(bytecode / "xdg")  # the compiled templates, as for a user
    if tree == ROOT:
        return env
    namespace = tree.parent / "site" / "cachewright"
    if not namespace.exists():
        namespace.mkdir(parents=True)
        for name in PACKAGES:
            (namespace / name).symlink_to(tree / name, target_is_directory=True)
    return {**env, "PYTHONPATH": str(namespace.parent)}


def compile_once(policy_file: Path, out: Path, env: dict[str, str], tree: Path = ROOT) -> Run:
    """One whole ``python -m cachewright.harness compile`` process: wall time, its own CPU time
    and peak RSS. Its messages go to a file, not a pipe: the warnings of a 10000-rule policy
    (100 KB) fill a pipe nobody reads before the child ends, and the child would wait forever."""
    argv = [sys.executable, "-m", "cachewright.harness", "compile", str(policy_file), "-o", str(out)]
    with tempfile.TemporaryFile() as messages:
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=tree, stdout=subprocess.DEVNULL, stderr=messages, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        messages.seek(0)
        stderr = messages.read().decode(errors="replace")
    if proc.returncode != 0:
        raise SystemExit(f"compile of {policy_file} failed ({proc.returncode}):\n{stderr[-4000:]}")
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    cpu = usage.ru_utime + usage.ru_stime
    return Run(seconds, cpu, usage.ru_maxrss / 1024, size)  # ru_maxrss is in KiB on Linux


def verify(policy_file: Path, env: dict[str, str], tree: Path = ROOT) -> list[tuple[str, bool, float, str]]:
    """``python -m cachewright.harness verify --target ENGINE`` (nginx -t, varnishd -C) for each engine:
    (engine, accepted, seconds, what it said)."""
    out = []
    for engine in ("nginx", "varnish"):
        argv = [sys.executable, "-m", "cachewright.harness", "verify", str(policy_file), "--target", engine]
        start = time.perf_counter()
        result = subprocess.run(argv, cwd=tree, capture_output=True, text=True, check=False,
                                env=env)
        seconds = time.perf_counter() - start
        lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
        said = lines[0] if result.returncode == 0 and lines else "\n".join(lines[-3:])
        out.append((engine, result.returncode == 0, seconds, said))
    return out


@dataclass(frozen=True)
class Startup:
    """``--version`` runs: wall times, and CPU times (user + system; less moved by other load)."""

    wall: list[float]
    cpu: list[float]


def startup(env: dict[str, str], tree: Path = ROOT, runs: int = STARTUP_RUNS) -> Startup:
    """Whole ``python -m cachewright.harness --version`` processes (what the console script runs:
    interpreter start, the CLI's imports, building its parser)."""
    argv = [sys.executable, "-m", "cachewright.harness", "--version"]
    wall, cpu = [], []
    for k in range(runs):
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=tree, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL, env=env)
        _, status, usage = os.wait4(proc.pid, 0)
        wall.append(time.perf_counter() - start)
        cpu.append(usage.ru_utime + usage.ru_stime)
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"--version failed ({proc.returncode})")
        print(f"  --version, run {k + 1}/{runs}: {wall[-1]:.3f} s ({cpu[-1]:.3f} s CPU)",
              file=sys.stderr)
    return Startup(wall, cpu)


@dataclass(frozen=True)
class Row:
    rules: int
    policy_kb: float
    output_mb: float
    median_s: float
    min_s: float
    max_s: float
    rss_mb: float
    cpu_s: float


def warm_up(work: Path, env: dict[str, str], tree: Path = ROOT) -> None:
    """One unmeasured compile: the children's bytecode is written, as an installed package has
    it (and the templates' compiled code is cached, as after any first compile)."""
    policy_file = work / "policy-warm-up.yaml"
    policy_file.write_text(policy(10), encoding="utf-8")
    compile_once(policy_file, work / "out-warm-up", env, tree)


def measure(sizes: tuple[int, ...], repeat: int, repeat_large: int, work: Path,
            env: dict[str, str], tree: Path = ROOT) -> list[Row]:
    rows = []
    for n in sizes:
        runs_wanted = repeat if n < LARGE else repeat_large
        policy_file = work / f"policy-{n}.yaml"
        policy_file.write_text(policy(n), encoding="utf-8")
        runs = []
        for k in range(runs_wanted):
            runs.append(compile_once(policy_file, work / f"out-{n}-{k}", env, tree))
            print(f"  {n} rules, run {k + 1}/{runs_wanted}: {runs[-1].seconds:.3f} s "
                  f"({runs[-1].cpu_seconds:.3f} s CPU), {runs[-1].max_rss_mb:.0f} MB", file=sys.stderr)
        times = [r.seconds for r in runs]
        rows.append(Row(n, policy_file.stat().st_size / 1024, runs[0].output_bytes / 1024**2,
                        statistics.median(times), min(times), max(times),
                        statistics.median(r.max_rss_mb for r in runs),
                        statistics.median(r.cpu_seconds for r in runs)))
    return rows


def table(rows: list[Row]) -> str:
    out = ["| rules | policy | output (both engines) | wall time, median | min – max | "
           "CPU time, median | peak RSS, median |",
           "|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r.rules} | {r.policy_kb:.0f} KB | {r.output_mb:.2f} MB | "
                   f"{r.median_s:.3f} s | {r.min_s:.3f} – {r.max_s:.3f} s | {r.cpu_s:.3f} s | "
                   f"{r.rss_mb:.0f} MB |")
    return "\n".join(out)


def verdict(rows: list[Row]) -> str:
    by = {r.rules: r for r in rows}
    lines = []
    if 1000 in by:
        r = by[1000]
        ok_t = "met" if r.median_s < TARGET_SECONDS else "**missed**"
        ok_m = "met" if r.rss_mb < TARGET_MB else "**missed**"
        lines.append(f"- 1000 rules: {r.median_s:.3f} s (target < {TARGET_SECONDS:.0f} s: {ok_t}), "
                     f"{r.rss_mb:.0f} MB (target < {TARGET_MB:.0f} MB: {ok_m}).")
    if 1000 in by and 10000 in by:
        ratio = by[10000].median_s / by[1000].median_s
        shape = "linear or better" if ratio <= 11 else "**worse than linear**"
        lines.append(f"- Growth: time(10000) / time(1000) = {ratio:.1f} for 10× the rules "
                     f"({shape}; 10 would be linear).")
        out_ratio = by[10000].output_mb / by[1000].output_mb
        lines.append(f"- Output size: size(10000) / size(1000) = {out_ratio:.1f}.")
    return "\n".join(lines)


def startup_table(version: Startup, rows: list[Row]) -> str:
    """Issue 22's start-up targets: ``--version`` and the 1000-rule compile, whole processes."""
    out = ["| command (whole process) | wall time, median | min – max | target | |",
           "|---|---:|---:|---:|---|"]
    wall = version.wall
    figures = [("`cachewright --version`", statistics.median(wall), min(wall), max(wall),
                STARTUP_TARGET,
                f" (CPU time, median: {statistics.median(version.cpu):.3f} s)")]
    figures += [("`cachewright compile` of 1000 rules", r.median_s, r.min_s, r.max_s,
                 COMPILE_TARGET, f" (CPU time, median: {r.cpu_s:.3f} s)")
                for r in rows if r.rules == 1000]
    for what, median, low, high, target, note in figures:
        met = "met" if median < target else "**missed**"
        out.append(f"| {what}{note} | {median:.3f} s | {low:.3f} – {high:.3f} s | "
                   f"< {target:g} s | {met} |")
    return "\n".join(out)


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    return (f"{os.cpu_count()} cores ({cpu}), Linux {platform.release()}, "
            f"Python {platform.python_version()}; load average {load} when the run began")


def source(ref: str | None) -> str:
    """What was measured: a commit, or the working tree (and whether it had changes)."""
    def git(*args: str) -> str:
        result = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True,
                                check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    if ref is not None:
        return f"commit {git('rev-parse', '--short', ref) or ref}"
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--untracked-files=no")
    return f"working tree at {head}" + (" with uncommitted changes" if dirty else "")


def report(rows: list[Row], repeat: int, repeat_large: int,
           verified: list[tuple[str, bool, float, str]] | None, measured: str,
           version: Startup, where: str) -> str:
    date = datetime.date.today().isoformat()
    parts = [
        "## Compile",
        "",
        "How long `cachewright compile` takes as a whole process (interpreter start, imports, "
        "load and validation, lowering, rendering, writing) for both targets, and its peak "
        "resident memory.",
        "",
        "```",
        "python benchmarks/compile/run.py --ref HEAD --write-docs",
        "```",
        "",
        f"- Date: {date}",
        f"- Machine: {where}",
        f"- Code: {measured}",
        f"- Each size: {repeat} runs ({repeat_large} from {LARGE} rules) of `python -m cachewright.harness "
        "compile POLICY -o DIR`; the median is shown. CPU time (user + system) and peak RSS are "
        "the child's own (`wait4`). The children run with bytecode, as an installed cachewright "
        "does (`PYTHONPYCACHEPREFIX` in the run's temporary directory, filled by one unmeasured "
        "compile; without it every run compiles each module from source).",
        "- Policies: generated by `benchmarks/compile/run.py` — two thirds plain `path_prefix` "
        "rules, the rest regex paths, extensions, header, cookie, host and keyed rules, TTLs "
        "from 10s to 30d, query ignore, stale, status_ttl and URL purging; no rule shadows "
        "another.",
        "",
        table(rows),
        "",
        verdict(rows),
        "",
        "Start-up (issue 22: the CLI imports a command's machinery only when that command runs; "
        f"a pre-commit hook pays this per call). {len(version.wall)} runs of `python -m "
        "cachewright.harness --version`, what the console script runs; the compile row is the "
        "table's:",
        "",
        startup_table(version, rows),
    ]
    if verified is not None:
        parts += ["", verify_table(verified)]
    return "\n".join(parts) + "\n"


def verify_table(verified: list[tuple[str, bool, float, str]]) -> str:
    parts = [f"Real engines on the {VERIFY_SIZE}-rule output (`python -m cachewright.harness "
             "verify POLICY --target ENGINE`):", "",
             "| engine | verdict | time | said |", "|---|---|---:|---|"]
    for engine, ok, seconds, said in verified:
        verdict_ = "accepted" if ok else "**not accepted**"
        said_ = "<br>".join(f"`{line.strip()}`" for line in said.splitlines()).replace(
            "|", "\\|")
        parts.append(f"| {engine} | {verdict_} | {seconds:.1f} s | {said_} |")
    return "\n".join(parts)


def write_docs(section: str) -> None:
    """Replace the "## Compile" section of docs/benchmarks.md (other sections are kept)."""
    text = DOCS.read_text(encoding="utf-8") if DOCS.exists() else "# Benchmarks\n\n"
    start = text.find("## Compile\n")
    if start == -1:
        text = text.rstrip("\n") + "\n\n" + section
    else:
        end = text.find("\n## ", start + 1)
        text = text[:start] + section + ("" if end == -1 else text[end:])
    DOCS.write_text(text, encoding="utf-8")


def profile(rules: int, top: int = 25) -> None:
    """cProfile one in-process compile of an ``rules``-rule policy; print the hot spots."""
    import cProfile
    import pstats

    from cachewright.harness.cli import main as cli

    with tempfile.TemporaryDirectory(prefix="cachewright-profile-") as tmp:
        policy_file = Path(tmp) / f"policy-{rules}.yaml"
        policy_file.write_text(policy(rules), encoding="utf-8")
        profiler = cProfile.Profile()
        profiler.enable()
        code = cli(["compile", str(policy_file), "-o", str(Path(tmp) / "out")])
        profiler.disable()
    if code != 0:
        raise SystemExit(f"compile failed ({code})")
    stats = pstats.Stats(profiler, stream=sys.stdout)
    stats.sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)


def extract(ref: str, tree: Path) -> Path:
    """Commit ``ref``'s files in ``tree`` (``git archive``)."""
    tree.mkdir()
    archive = subprocess.run(["git", "archive", ref], cwd=ROOT, capture_output=True,
                             check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive, check=True)
    return tree


def benchmark(args: argparse.Namespace, tmp: Path) -> str:
    """Every measurement ``args`` asks for, in ``tmp``; the docs section reporting them."""
    work = args.keep or tmp
    work.mkdir(parents=True, exist_ok=True)
    tree = ROOT
    if args.ref is not None:
        args.ref = subprocess.run(["git", "rev-parse", "--verify", f"{args.ref}^{{commit}}"],
                                  cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
        tree = extract(args.ref, tmp / "tree")
    env = environment(tree, tmp / "bytecode")
    where = machine()
    warm_up(work, env, tree)
    version = startup(env, tree)
    rows = measure(tuple(args.sizes), args.repeat, args.repeat_large, work, env, tree)
    verified = None
    if not args.no_verify:
        policy_file = work / f"policy-{VERIFY_SIZE}.yaml"
        policy_file.write_text(policy(VERIFY_SIZE), encoding="utf-8")
        verified = verify(policy_file, env, tree)
    return report(rows, args.repeat, args.repeat_large, verified, source(args.ref), version, where)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--sizes", type=int, nargs="+", default=list(SIZES), help="rule counts")
    p.add_argument("--repeat", type=int, default=5, help="runs per size (median reported)")
    p.add_argument("--repeat-large", type=int, default=3,
                   help=f"runs per size from {LARGE} rules (default: 3)")
    p.add_argument("--ref", help="measure this git commit (extracted with git archive) instead "
                                 "of the working tree")
    p.add_argument("--no-verify", action="store_true", help="skip nginx -t / varnishd -C")
    p.add_argument("--write-docs", action="store_true", help="rewrite docs/benchmarks.md")
    p.add_argument("--keep", type=Path, help="write policies and outputs here (kept)")
    p.add_argument("--profile", type=int, metavar="RULES",
                   help="instead: cProfile one in-process compile of a RULES-rule policy")
    args = p.parse_args(argv)
    if args.profile:
        profile(args.profile)
        return 0
    with tempfile.TemporaryDirectory(prefix="cachewright-bench-") as tmp:
        section = benchmark(args, Path(tmp))
    print(section)
    if args.write_docs:
        write_docs(section)
        print(f"wrote {DOCS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
