"""The ``cachewright`` console script's first code (and ``python -m cachewright.harness``'s).

The cyclic garbage collector is paused before anything is imported: a short command (compile,
validate, ...) allocates many objects that live until the process ends (modules, the policy's
records, the rendered text) and no cycles worth collecting, and each collection walks the live
objects again, about a twentieth of a 1000-rule compile (docs/benchmarks.md). ``cli.main``
resumes it once the arguments name a command that runs for long (``test``, ``compare``, ...).
Reference counting frees what is dropped either way.
"""

from __future__ import annotations

import gc


def entry() -> None:
    gc.disable()
    from .cli import entry as run

    run(collector_paused=True)
