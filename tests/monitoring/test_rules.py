"""The rules file: every field checked, every mistake at its line and column."""

import textwrap

import pytest

from cairn.errors import InvalidArgument
from cairn.monitoring.rules import Action, RulesError, parse_rules

GOOD = textwrap.dedent("""\
    rules:
      - name: live-accuracy-drop
        model: fraud                    # a registered model's name, or models:/fraud@production
        condition: "live.accuracy < train.accuracy - 0.05"
        for: 10m
        actions:
          - notify: {url: "https://hooks.example.com/cairn", secret: "s3cret-hush"}
          - rollback
      - name: canary-worse
        model: models:/fraud@Production
        condition: canary.live.accuracy < primary.live.accuracy - 0.02
        window: 1h
        min_requests: 500
        actions:
          - abort: {canary: "@challenger"}
          - notify: {url: "http://127.0.0.1:9/x", secret: s3cret-hush, format: slack}
      - name: canary-good
        model: fraud@production
        condition: canary.live.accuracy >= primary.live.accuracy
        min_requests: 500
        canary: "@green"
        actions: [promote]
    """)


def test_the_issue_example_parses_with_defaults():
    first, second, third = parse_rules(GOOD)
    assert (first.name, first.model, first.for_s, first.window_s, first.min_requests) == \
        ("live-accuracy-drop", "fraud", 600, 600, 0)
    assert first.model_name == "fraud" and first.selector is None
    assert first.actions == (Action("notify", {"url": "https://hooks.example.com/cairn",
                                               "secret": "s3cret-hush", "format": "json"}),
                             Action("rollback", {}))  # the stage followed, else production
    assert first.line == 2
    assert (second.model, second.selector, second.window_s, second.min_requests) == \
        ("fraud@production", "production", 3600, 500)
    assert second.actions[0] == Action("abort", {"canary": "challenger"})
    assert second.canary == "challenger"
    assert third.canary == "green" and third.actions == (Action("promote", {"canary": "green"}),)
    # The stored form round-trips, and secrets can be hidden for display.
    from cairn.monitoring.rules import Rule

    assert Rule.from_dict(first.to_dict()) == first
    assert first.to_dict(secrets=False)["actions"][0]["secret"] == "***"


def test_empty_rules_list_is_allowed():
    assert parse_rules("rules: []\n") == []
    assert parse_rules("rules:\n") == []


def _error(text):
    with pytest.raises(RulesError) as err:
        parse_rules(textwrap.dedent(text))
    e = err.value
    assert e.message.startswith(f"line {e.details['line']}, column {e.details['column']}: ")
    return e.details["line"], e.details["column"], e.message


RULE = """\
rules:
  - name: r
    model: fraud
    condition: "serving.error_rate > 0.1"
"""


@pytest.mark.parametrize("text, line, column, words", [
    ("rules: [\n", 2, 1, "not valid YAML"),
    ("rules:\n  - name: r\n   model: x\n", 3, 4, "not valid YAML"),
    ("", 1, 1, "empty"),
    ("- a\n", 1, 1, "must be a mapping"),
    ("rulez: []\n", 1, 1, "unknown key 'rulez'"),
    ("rules: 3\n", 1, 8, "must be a list"),
    (RULE + "    fro: 1m\n", 5, 5, "unknown key 'fro'"),
    (RULE + "    for: soon\n", 5, 10, "not a duration"),
    (RULE + "    for: 90d\n", 5, 10, "from 0s to 30d"),
    (RULE + "    window: 0\n", 5, 13, "from 1s"),
    (RULE + "    min_requests: -1\n", 5, 19, "min_requests"),
    (RULE + "    min_requests: true\n", 5, 19, "min_requests"),
    (RULE + "    actions: rollback\n", 5, 14, "must be a list"),
    (RULE + "    actions: [explode]\n", 5, 15, "unknown action 'explode'"),
    (RULE + "    actions:\n      - notify: {url: ftp://x, secret: s}\n", 6, 23, "http"),
    (RULE + "    actions:\n      - notify: {url: 'http://x'}\n", 6, 9, "needs a secret"),
    (RULE + "    actions:\n      - notify: {url: 'http://x', secret: short}\n", 6, 43, "8 to 512"),
    (RULE + "    actions:\n      - notify: {url: 'http://x', secret: longsecret, format: xml}\n",
     6, 63, "json or slack"),
    (RULE + "    actions:\n      - rollback: {stage: heaven}\n", 6, 27, "not a stage"),
    (RULE + "    actions:\n      - abort: {canary: '@bad alias'}\n", 6, 25, "alias"),
    (RULE + "    actions:\n      - abort: {canary: x, when: now}\n", 6, 28, "unknown key 'when'"),
    (RULE + "    actions:\n      - {abort: {}, promote: {}}\n", 6, 9, "one name"),
    (RULE + "  - name: r\n    model: fraud\n    condition: 'true'\n", 5, 11, "used twice"),
    (RULE + "    name: again\n", 5, 5, "given twice"),
    ("rules:\n  - name: r\n    model: fraud\n", 2, 5, "needs 'condition'"),
    ("rules:\n  - name: -r\n    model: fraud\n    condition: 'true'\n", 2, 11, "rule name"),
    ("rules:\n  - name: r\n    model: fraud/1.0.0\n    condition: 'true'\n", 3, 12, "model"),
    ("rules:\n  - name: r\n    model: [fraud]\n    condition: 'true'\n", 3, 12, "single value"),
    ("rules:\n  - name: r\n    model: " + "f" * 250 + "@champion\n    condition: 'true'\n", 3, 12,
     "at most 256"),
    ("rules:\n  - name: r\n    model: fraud\n    condition: 42\n", 4, 16, "must be a string"),
    ("rules:\n  - name: r\n    model: fraud\n    condition: \"live.acc < 1\"\n",
     4, 17, "unknown fact 'live.acc'"),
    ("rules:\n  - name: r\n    model: fraud\n    condition: live.accuracy <\n",
     4, 31, "ends where a value"),
])
def test_mistakes_are_reported_where_they_are(text, line, column, words):
    got_line, got_col, message = _error(text)
    assert (got_line, got_col) == (line, column), message
    assert words in message


def test_bad_input_types():
    for bad in (None, b"rules: []", 3):
        with pytest.raises(InvalidArgument):
            parse_rules(bad)
    with pytest.raises(InvalidArgument, match="surrogate"):
        parse_rules("rules: []\n# \ud800\n")
    with pytest.raises(InvalidArgument, match="over"):
        parse_rules("rules: []\n" + "#" * 1_000_001)
