"""The engines cachewright compiles a policy for, named once: the policy language's ``engine``
values, the capability table's columns, the compiler's targets and the harness's engines."""

ENGINES = ("nginx", "varnish")
