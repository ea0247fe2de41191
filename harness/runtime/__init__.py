"""Where the engines run: the runtime protocol (``api``) and its two runtimes, ``local`` (child
processes) and ``docker`` (containers), with what they share: adapting a policy to a run
(``prepare``), ports, processes and signals (``procs``), throw-away TLS files and the reaper of
killed runs. Runtimes orchestrate; what an engine is (its binaries, packages, start command,
config check and stored-object record) lives in ``harness.engines``.
"""
