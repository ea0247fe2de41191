"""``wrk`` as ``compare``'s fast load client (Debian 12 ships 4.1.0).

A generated Lua script cycles through the request paths and prints its summary as one JSON line.
It is fast, so it measures the engine rather than the client; it runs for whole seconds and
cannot stop after a number of requests.
"""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
import shlex
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..runtime.api import HarnessError
from .loadspec import CDF_PERCENTILES, NO_HEADERS, LoadResult, Spec, load_result, load_spec

#: how long past its own duration and timeout a wrk run may take before it is killed
WRK_GRACE_S = 10.0
_RESULT_MARKER = "cachewright-load-result "

_WRK_SCRIPT = """\
-- Cycle through the paths in PATHS_FILE (one per line), each thread starting at its own
-- offset; optionally count statuses; print the summary as one JSON line in done().
local threads = {}

function setup(thread)
   thread:set("id", #threads)
   table.insert(threads, thread)
end

function init(args)
   requests = {}
   for path in io.lines(PATHS_FILE) do
      requests[#requests + 1] = wrk.format(nil, path)
   end
   index = math.floor(#requests * id / THREADS)
   statuses = {}
end

function request()
   index = index % #requests + 1
   return requests[index]
end

if COUNT_STATUSES then
   function response(status, headers, body)
      statuses[status] = (statuses[status] or 0) + 1
   end
end

function done(summary, latency, requests)
   local counts = {}
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         counts[status] = (counts[status] or 0) + n
      end
   end
   local codes = {}
   for status, n in pairs(counts) do
      codes[#codes + 1] = string.format('"%d":%d', status, n)
   end
   local cdf = {}
   for i, p in ipairs(CDF_PERCENTILES) do
      cdf[i] = string.format("%d", latency:percentile(p))
   end
   local e = summary.errors
   io.write(RESULT_MARKER, string.format(
      '{"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,"timeout":%d,'
      .. '"mean_us":%.3f,"max_us":%d,"cdf_us":[%s],"statuses":{%s}}\\n',
      summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
      latency.mean, latency.max, table.concat(cdf, ","), table.concat(codes, ",")))
end
"""


def run_wrk(urls: Sequence[str], *, host: str | None, concurrency: int, duration_s: float, threads: int = 2,
            max_requests: int | None = None, timeout_s: float = 2.0, headers: Mapping[str, str] = NO_HEADERS,
            ca_file: Path | None = None, count_statuses: bool = False) -> LoadResult:
    """Load ``urls`` (loopback, one origin, any number of paths, cycled) with ``wrk``.

    wrk runs for whole seconds (``duration_s`` and ``timeout_s`` are rounded up) and cannot stop
    after a number of requests, so ``max_requests`` must be None. It does not verify TLS, so
    ``ca_file`` is ignored. ``count_statuses`` fills ``statuses`` through a Lua ``response``
    hook, which costs wrk much of its speed: leave it off for throughput runs. wrk refuses to
    start when the target does not accept connections (a ``HarnessError`` with its message)."""
    if max_requests is not None:
        raise ValueError("wrk runs for a time, not a number of requests: leave max_requests unset "
                         "or use the builtin client")
    spec = load_spec(urls, host, headers, concurrency, duration_s, threads, max_requests, timeout_s)
    binary = shutil.which("wrk")
    if binary is None:
        raise HarnessError("wrk is not on PATH (Debian: apt-get install wrk)")
    with tempfile.TemporaryDirectory(prefix="cachewright-wrk-") as tmp:
        script = _write_wrk_files(Path(tmp), spec, count_statuses)
        argv = _wrk_argv(binary, script, spec)
        stdout = _run_bounded(argv, math.ceil(duration_s) + math.ceil(timeout_s) + WRK_GRACE_S)
    return _parse_wrk(stdout, _wrk_version(binary))


def _write_wrk_files(directory: Path, spec: Spec, count_statuses: bool) -> Path:
    """Write the paths (one a line: they were checked to hold no control bytes) and the script."""
    paths = directory / "paths.txt"
    paths.write_text("".join(f"{path}\n" for path in spec.paths), encoding="utf-8")
    prelude = [
        f"local PATHS_FILE = {_lua_string(str(paths))}",
        f"local THREADS = {_wrk_threads(spec)}",
        f"local COUNT_STATUSES = {'true' if count_statuses else 'false'}",
        f"local CDF_PERCENTILES = {{{', '.join(str(p) for p in CDF_PERCENTILES)}}}",
        f"local RESULT_MARKER = {_lua_string(_RESULT_MARKER)}",
    ]
    script = directory / "load.lua"
    script.write_text("\n".join(prelude) + "\n" + _WRK_SCRIPT, encoding="utf-8")
    return script


def _lua_string(value: str) -> str:
    """``value`` as a Lua long-bracket string literal, which has no escapes to get wrong."""
    level = next(n for n in itertools.count() if f"]{'=' * n}]" not in value + "]")
    return f"[{'=' * level}[{value}]{'=' * level}]"


def _wrk_threads(spec: Spec) -> int:
    return min(spec.threads, spec.concurrency)  # wrk refuses fewer connections than threads


def _wrk_argv(binary: str, script: Path, spec: Spec) -> list[str]:
    argv = [binary, f"--threads={_wrk_threads(spec)}", f"--connections={spec.concurrency}",
            f"--duration={max(1, math.ceil(spec.duration_s))}s",
            f"--timeout={max(1, math.ceil(spec.timeout_s))}s", f"--script={script}"]
    for name, value in spec.headers:
        argv.append(f"--header={name}: {value}")
    return [*argv, f"{spec.base_url}/"]


def _run_bounded(argv: list[str], limit_s: float) -> str:
    """Run wrk and return its stdout; kill it (by its own PID) when it overruns ``limit_s`` or the
    harness is interrupted, so no load keeps running behind the caller's back."""
    try:
        with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, start_new_session=True) as proc:
            try:
                stdout, stderr = proc.communicate(timeout=limit_s)
            except BaseException:
                proc.kill()
                raise
    except subprocess.TimeoutExpired:
        raise HarnessError(f"wrk did not finish within {limit_s:g}s and was killed: {shlex.join(argv)}") from None
    if proc.returncode != 0:
        raise HarnessError(f"wrk failed (exit status {proc.returncode}): {shlex.join(argv)}\n{stderr}{stdout}")
    return stdout


def _parse_wrk(stdout: str, tool: str) -> LoadResult:
    line = next((line for line in stdout.splitlines() if line.startswith(_RESULT_MARKER)), None)
    if line is None:
        raise HarnessError(f"wrk printed no result line; its output:\n{stdout}")
    raw: dict[str, Any] = json.loads(line[len(_RESULT_MARKER):])
    cdf = [(p, us / 1000) for p, us in zip(CDF_PERCENTILES, raw["cdf_us"], strict=True)]
    errors = sum(int(raw[kind]) for kind in ("connect", "read", "write", "timeout"))
    statuses = {int(status): int(n) for status, n in raw["statuses"].items()}
    return load_result(tool, int(raw["requests"]), errors, statuses, int(raw["status"]), raw["duration_us"] / 1e6,
                   raw["mean_us"] / 1000, raw["max_us"] / 1000, cdf)


@functools.cache
def _wrk_version(binary: str) -> str:
    """The tool and its version, e.g. ``wrk 4.1.0``, from ``wrk -v`` (which prints its banner and
    exits with status 1)."""
    try:
        banner = subprocess.run([binary, "-v"], capture_output=True, text=True, timeout=5, check=False)
    except subprocess.TimeoutExpired:
        return "wrk"
    found = re.search(r"^wrk (?:\S*/)?(\d+(?:\.\d+)+)", banner.stdout + banner.stderr, re.MULTILINE)
    return f"wrk {found.group(1)}" if found else "wrk"
