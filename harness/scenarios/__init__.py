"""User-written scenarios: YAML request sequences with expectations, run against one engine at a time.

A scenario file (format in ``docs/scenarios.md``; schema in ``language``) is validated with the
policy language's schema machinery (``generator.spec``) after the reader policies use
(``generator.yamlnode``), so its errors read like a policy's —
``scenarios.yaml:12:9: scenarios[0].steps[1].expect.cache: "hitt" is not one of: hit, miss,
bypass, stale`` — and is frozen into ``Scenario`` records (``model``) once (``load``).
``run_scenario`` (``run``) then sends each step's request through one engine, compares the answer
and the origin's request counts with the step's expectations (``expectations``), and returns one
``CheckResult`` whose details hold every exchange.

``{run}`` in a path, pattern, header value, cookie value or body is replaced by a token unique to
one run of one scenario on one engine, so that a scenario starts from an empty cache however
often it runs against the same stack.
"""

from .expectations import check_expectations
from .language import CACHE_OUTCOMES, SCENARIO, SCENARIO_FILE
from .load import ScenarioError, load_scenarios, loads_scenarios
from .model import (
    TOKEN,
    CookieExpectations,
    Exchange,
    Expect,
    HeaderExpectations,
    OriginRule,
    Received,
    Request,
    Scenario,
    Step,
)
from .run import (
    EngineClient,
    OriginControl,
    ScenarioContext,
    StackContext,
    new_token,
    run_scenario,
    run_scenarios,
)

__all__ = [
    "CACHE_OUTCOMES", "SCENARIO", "SCENARIO_FILE", "TOKEN", "CookieExpectations", "EngineClient",
    "Exchange", "Expect", "HeaderExpectations", "OriginControl", "OriginRule", "Received", "Request",
    "Scenario", "ScenarioContext", "ScenarioError", "StackContext", "Step", "check_expectations",
    "load_scenarios", "loads_scenarios", "new_token", "run_scenario", "run_scenarios",
]
