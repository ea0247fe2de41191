"""``cachewright diff``'s model: which requests two versions of a policy treat differently.

``sources``: the request set (each rule's matching and boundary requests from both policies, a
requests file; one function per source); ``outcome``: what each engine does with a request,
normalised from ``explain`` into comparable fields; ``compare``: the changes per request;
``sides``: reading OLD and NEW (a file, or ``REV:path`` from git); ``render``: table, JSON,
Markdown and GitHub annotations; ``replay``: ``--verify-engines``, the predicted changes
replayed against the real engines.
"""
