"""One module per subcommand: each has ``add_parser(subparsers)`` and ``run(args) -> int``.

``HELP`` is every command"s one-line summary, in the order ``cachewright --help`` lists them:
the CLI lists the commands from it and imports only the module of the command that runs.
"""

HELP = {
    "init": "write a commented starter policy (static, api, cms or shop)",
    "compile": "compile a policy into engine configurations",
    "validate": "check policies: load and compile each in memory (no engines)",
    "verify": "check a policy's output with nginx -t, varnishd -C and hitch --test",
    "test": "run the engines in front of a sample app and prove the policy",
    "compare": "run nginx and Varnish on one policy: capabilities, correctness, performance",
    "serve": "keep the sample origin and the engine(s) running for curl and friends",
    "explain": "show which rule a request matches and what each engine does with it",
    "replay": "predict what a policy does with a real access log: hit ratio per rule",
    "diff": "show which requests behave differently between two versions of a policy",
    "purge": "purge a URL, prefix, tag or everything on one or many cache nodes at once",
    "capabilities": "print what each engine supports (native / module / unsupported)",
    "schema": "print the policy JSON Schema",
}
