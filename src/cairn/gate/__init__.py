"""The CI gate for promotions (``cairn check``): compare a candidate model version with
the baseline (production) on declared rules, and say pass or fail.

::

    from cairn.gate import GateSpec, check

    spec = GateSpec().merged(rules=["val_auc >= baseline - 0.005"], require=["approval"])
    result = check(cairn.Client(), "models:/fraud@candidate", spec)
    result.passed, result.to_dict(), render(result)    # render: Markdown for a PR comment

Nothing here is imported by ``import cairn``.
"""

from .evaluate import APPROVAL_STAGES, check
from .markdown import render
from .result import Check, GateResult, Side
from .rules import OPERATORS, MetricRule, parse_rule
from .seeds import TESTS, SeedGroup, Test, one_sided, seed_group
from .spec import REQUIREMENTS, GateSpec, load_spec, spec_from_dict

__all__ = [
    "APPROVAL_STAGES", "OPERATORS", "REQUIREMENTS", "TESTS", "Check", "GateResult", "GateSpec",
    "MetricRule", "SeedGroup", "Side", "Test", "check", "load_spec", "one_sided", "parse_rule",
    "render", "seed_group", "spec_from_dict",
]
