"""Alert rules: the YAML file, read and checked; every mistake named by line and column.

::

    rules:
      - name: live-accuracy-drop
        model: fraud                    # a registered model's name, or models:/fraud@production
        condition: "live.accuracy < train.accuracy - 0.05"
        for: 10m                        # how long the condition must hold before it fires
        window: 10m                     # the trailing span live facts are computed over
        min_requests: 200               # unknown until the window holds this many requests
        actions:
          - notify: {url: "https://hooks.example.com/cairn", secret: "..."}
          - rollback

The file is composed with :func:`yaml.compose`, so a field's node keeps its place in the
text: a bad value is reported at its own line and column, a bad condition at the column
of the mistake inside it.  Nothing here touches a store.
"""

from __future__ import annotations

import functools

import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from ..errors import InvalidArgument, MissingDependency
from . import conditions

ACTIONS = ("notify", "rollback", "abort", "promote")
FORMATS = ("json", "slack")
DEFAULT_WINDOW_S = 600
DEFAULT_CANARY = "challenger"
MAX_RULES = 1000
MAX_SOURCE = 1_000_000
MAX_FOR_S = 30 * 86400
_RULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}")
_DURATION = re.compile(r"(\d{1,9})\s*([smhdw]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_RULE_KEYS = ("name", "model", "condition", "for", "window", "min_requests", "canary",
              "actions", "description")
_ACTION_KEYS: dict[str, tuple[str, ...]] = {
    "notify": ("url", "secret", "format"), "rollback": ("stage",),
    "abort": ("canary", "to"), "promote": ("canary", "to")}


class RulesError(InvalidArgument):
    """Rules that do not parse or check; ``line`` and ``column`` (1-based) say where."""


@dataclass(frozen=True, slots=True)
class Action:
    kind: str                       # notify | rollback | abort | promote
    options: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self, secrets: bool = True) -> dict[str, Any]:
        opts = dict(self.options)
        if not secrets and "secret" in opts:
            opts["secret"] = "***"
        return {"kind": self.kind, **opts}


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    model: str                      # "fraud" or "fraud@production" (a stage or an alias)
    condition: str
    for_s: int = 0
    window_s: int = DEFAULT_WINDOW_S
    min_requests: int = 0
    canary: str = DEFAULT_CANARY    # the canary arm's alias (canary.* facts, abort, promote)
    actions: tuple[Action, ...] = ()
    description: str = ""
    line: int = 0                   # where the rule starts in its file

    @property
    def model_name(self) -> str:
        return self.model.partition("@")[0]

    @property
    def selector(self) -> str | None:
        """The stage or alias the rule follows (None: the model as a whole)."""
        return self.model.partition("@")[2] or None

    def parsed(self) -> conditions.Condition:
        # Asked for twice per rule per cycle (facts, then the verdict): parsed once.
        return _parsed(self.condition)

    def to_dict(self, secrets: bool = True) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "condition": self.condition,
                "for_s": self.for_s, "window_s": self.window_s,
                "min_requests": self.min_requests, "canary": self.canary,
                "actions": [a.to_dict(secrets) for a in self.actions],
                "description": self.description, "line": self.line}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> Rule:
        acts = tuple(Action(a["kind"], {k: v for k, v in a.items() if k != "kind"})
                     for a in d.get("actions", ()))
        return cls(d["name"], d["model"], d["condition"], int(d.get("for_s", 0)),
                   int(d.get("window_s", DEFAULT_WINDOW_S)), int(d.get("min_requests", 0)),
                   d.get("canary", DEFAULT_CANARY), acts, d.get("description", ""),
                   int(d.get("line", 0)))


# -- reading the YAML -------------------------------------------------------------------
def _yaml() -> Any:
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - the extra is installed in tests
        raise MissingDependency("alert rules need PyYAML: pip install 'cairn[monitor]'",
                                packages=["pyyaml"]) from None
    return yaml


def _at(node: Any, why: str, col_offset: int = 0) -> RulesError:
    mark = node.start_mark
    line, col = mark.line + 1, mark.column + 1 + col_offset
    return RulesError(f"line {line}, column {col}: {why}", line=line, column=col)


def _kind(node: Any) -> str:
    name = type(node).__name__
    return {"MappingNode": "a mapping", "SequenceNode": "a list"}.get(name, "a value")


def _scalar(node: Any) -> Any:
    yaml = _yaml()
    if not isinstance(node, yaml.ScalarNode):
        raise _at(node, f"expected a single value, got {_kind(node)}")
    try:
        return yaml.SafeLoader("").construct_object(node)
    except (yaml.YAMLError, ValueError, TypeError, OverflowError) as exc:
        # A value YAML cannot build: a tag it does not know (!!python/object, '<<'), a
        # timestamp that is not a date (2001-13-45), a !!binary that is not base64.
        why = getattr(exc, "problem", None) or str(exc).split("\n")[0]
        raise _at(node, f"{str(node.value)[:60]!r} is not a value this file can hold: {why}") from None


def _string(node: Any, what: str, *, empty: bool = False) -> str:
    value = _scalar(node)
    if not isinstance(value, str):
        raise _at(node, f"{what} must be a string, got {value!r}")
    from ..store.validation import surrogate_error

    if surrogate_error(value, what) is not None or "\x00" in value:
        raise _at(node, f"{what} must be valid Unicode text without NUL characters")
    if not empty and not value.strip():
        raise _at(node, f"{what} must not be empty")
    return value


def _mapping(node: Any, what: str, allowed: tuple[str, ...]) -> dict[str, tuple[Any, Any]]:
    """``{key: (key_node, value_node)}``; unknown and repeated keys are errors at the key."""
    yaml = _yaml()
    if not isinstance(node, yaml.MappingNode):
        raise _at(node, f"{what} must be a mapping (key: value), got {_kind(node)}")
    out: dict[str, tuple[Any, Any]] = {}
    for k, v in node.value:
        key = _scalar(k)
        if not isinstance(key, str) or key not in allowed:
            raise _at(k, f"unknown key {key!r} in {what}; allowed: {', '.join(allowed)}")
        if key in out:
            raise _at(k, f"{key!r} is given twice in {what}")
        out[key] = (k, v)
    return out


def parse_duration(value: Any, what: str, *, zero: bool) -> int:
    """Seconds from ``30s``, ``10m``, ``1h``, ``1d``, ``1w`` or a whole number of seconds."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidArgument(f"{what} must be a duration such as 30s, 10m or 1h, got {value!r}")
    if isinstance(value, int):
        seconds = value
    else:
        m = _DURATION.fullmatch(value.strip().lower())
        if m is None:
            raise InvalidArgument(f"{what} {value!r} is not a duration: give a whole number "
                                  "and a unit (s, m, h, d, w), such as 30s, 10m or 1h")
        seconds = int(m[1]) * _UNITS[m[2]]
    low = 0 if zero else 1
    if not low <= seconds <= MAX_FOR_S:
        raise InvalidArgument(f"{what} must be from {low}s to 30d, got {value!r}")
    return seconds


def _duration(node: Any, what: str, *, zero: bool) -> int:
    try:
        return parse_duration(_scalar(node), what, zero=zero)
    except RulesError:
        raise
    except InvalidArgument as exc:
        raise _at(node, exc.message) from None


def _model(node: Any) -> str:
    from ..registry.naming import check_alias, is_model_name

    text = _string(node, "model").strip()
    ref = text.removeprefix("models:/")
    name, at, sel = ref.partition("@")
    if not is_model_name(name):
        raise _at(node, f"model {text!r}: give a registered model's name (fraud) or a "
                        "reference to a stage or alias (models:/fraud@production)")
    if at:
        from ..registry.entities import Stage

        if Stage.is_stage(sel):
            ref = f"{name}@{Stage.parse(sel).value.lower()}"
        else:
            try:
                check_alias(sel)
            except InvalidArgument as exc:
                raise _at(node, f"model {text!r}: {exc.message}") from None
    if len(ref) > 256:  # what an alert's row holds
        raise _at(node, f"model {text[:40]!r}...: at most 256 characters with its @selector")
    return ref


def _checked(node: Any, check: Any, value: Any) -> Any:
    try:
        return check(value)
    except InvalidArgument as exc:
        raise _at(node, exc.message) from None


def _alias(node: Any, what: str) -> str:
    """An alias or stage written ``@challenger`` or ``challenger``."""
    from ..registry.entities import Stage
    from ..registry.naming import check_alias

    text = _string(node, what).strip().removeprefix("@")
    if Stage.is_stage(text):
        return Stage.parse(text).value.lower()
    try:
        check_alias(text)
    except InvalidArgument as exc:
        raise _at(node, f"{what}: {exc.message}") from None
    return text


def _action(node: Any, i: int) -> Action:
    yaml = _yaml()
    where = f"actions[{i}]"
    if isinstance(node, yaml.ScalarNode):
        kind, opts_node = _scalar(node), None
        if kind not in ACTIONS:
            raise _at(node, f"{where}: unknown action {kind!r}; one of {', '.join(ACTIONS)}")
    else:
        if not isinstance(node, yaml.MappingNode) or len(node.value) != 1:
            raise _at(node, f"{where}: an action is a name (rollback) or one name with its "
                            "options ({notify: {url: ..., secret: ...}})")
        key_node, opts_node = node.value[0]
        kind = _scalar(key_node)
        if kind not in ACTIONS:
            raise _at(key_node, f"{where}: unknown action {kind!r}; one of {', '.join(ACTIONS)}")
        if isinstance(opts_node, yaml.ScalarNode) and _scalar(opts_node) is None:
            opts_node = None
    fields = {} if opts_node is None else _mapping(opts_node, f"{where} ({kind})",
                                                  _ACTION_KEYS[kind])
    opts: dict[str, Any] = {}
    if kind == "notify":
        if "url" not in fields:
            raise _at(node, f"{where}: notify needs a url")
        from ..webhooks import rules as hooks  # the same checks its deliveries make

        url_node = fields["url"][1]
        opts["url"] = _checked(url_node, hooks.check_url, _string(url_node, "url").strip())
        if "secret" not in fields:
            raise _at(node, f"{where}: notify needs a secret (the deliveries are signed with it)")
        secret_node = fields["secret"][1]
        opts["secret"] = _checked(secret_node, hooks.check_secret,
                                  _string(secret_node, "secret", empty=True))
        fmt = _string(fields["format"][1], "format") if "format" in fields else "json"
        if fmt not in FORMATS:
            raise _at(fields["format"][1], f"format must be json or slack, got {fmt!r}")
        opts["format"] = fmt
    elif kind == "rollback":
        stage = None  # the stage the rule follows, else production (when it is taken)
        if "stage" in fields:
            from ..registry.entities import Stage

            text = _string(fields["stage"][1], "stage")
            if not Stage.is_stage(text):
                raise _at(fields["stage"][1], f"stage {text!r} is not a stage (development, "
                                              "staging, production, archived)")
            stage = Stage.parse(text).value.lower()
        if stage is not None:
            opts["stage"] = stage
    else:
        for key in ("canary", "to"):
            if key in fields:
                opts[key] = _alias(fields[key][1], key)
    return Action(kind, opts)


def _rule(node: Any, i: int) -> Rule:
    yaml = _yaml()
    f = _mapping(node, f"rules[{i}]", _RULE_KEYS)
    for key in ("name", "model", "condition"):
        if key not in f:
            raise _at(node, f"rules[{i}] needs {key!r}")
    name_node = f["name"][1]
    name = _string(name_node, "name")
    if not _RULE_NAME.fullmatch(name):
        raise _at(name_node, f"rule name {name!r}: use letters, digits, '.', '_' and '-', "
                             "starting with a letter or digit, at most 128 characters")
    model = _model(f["model"][1])
    cond_node = f["condition"][1]
    text = _string(cond_node, "condition")
    try:
        conditions.parse(text)
    except conditions.ConditionError as exc:
        col = int(exc.details.get("column", 1))
        single = "\n" not in text and cond_node.style in (None, '"', "'") and \
            cond_node.start_mark.line == cond_node.end_mark.line
        offset = (col - 1 + (1 if cond_node.style in ('"', "'") else 0)) if single else 0
        raise _at(cond_node, f"rule {name!r}: {exc.message}", offset) from None
    for_s = _duration(f["for"][1], "for", zero=True) if "for" in f else 0
    window_s = _duration(f["window"][1], "window", zero=False) if "window" in f \
        else DEFAULT_WINDOW_S
    min_requests = 0
    if "min_requests" in f:
        n = _scalar(f["min_requests"][1])
        if isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 10**9:
            raise _at(f["min_requests"][1], f"min_requests must be a whole number from 0 to "
                                            f"10**9, got {n!r}")
        min_requests = n
    actions: list[Action] = []
    if "actions" in f:
        acts = f["actions"][1]
        if isinstance(acts, yaml.ScalarNode) and _scalar(acts) is None:
            acts = yaml.SequenceNode("tag:yaml.org,2002:seq", [])
        if not isinstance(acts, yaml.SequenceNode):
            raise _at(acts, f"actions must be a list, got {_kind(acts)}")
        actions = [_action(a, j) for j, a in enumerate(acts.value)]
    declared = [a.options.get("canary") for a in actions if a.kind in ("abort", "promote")]
    canary = _alias(f["canary"][1], "canary") if "canary" in f else \
        next((c for c in declared if c), DEFAULT_CANARY)
    actions = [Action(a.kind, {"canary": canary, **a.options})
               if a.kind in ("abort", "promote") else a for a in actions]
    description = _string(f["description"][1], "description", empty=True) \
        if "description" in f else ""
    return Rule(name, model, text, for_s, window_s, min_requests, canary, tuple(actions),
                description, node.start_mark.line + 1)


def parse_rules(text: Any) -> list[Rule]:
    """The rules of a YAML file's text; :class:`RulesError` (with ``line`` and ``column``)
    for the first mistake."""
    if not isinstance(text, str):
        raise InvalidArgument(f"rules must be YAML text, got {type(text).__name__}")
    from ..store.validation import surrogate_error

    err = surrogate_error(text, "the rules file")
    if err is not None:
        raise err
    if len(text) > MAX_SOURCE:
        raise InvalidArgument(f"the rules file is over {MAX_SOURCE:,} characters")
    yaml = _yaml()
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except RecursionError:
        raise RulesError("line 1, column 1: the file is nested too deeply to read",
                         line=1, column=1) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise RulesError(f"line {line}, column {col}: the file is not valid YAML: "
                         f"{exc.problem or exc.context}", line=line, column=col) from None
    except yaml.YAMLError as exc:
        raise RulesError(f"the file is not valid YAML: {exc}", line=1, column=1) from None
    if root is None:
        raise RulesError("line 1, column 1: the file is empty; give 'rules:' with a list "
                         "(an empty list removes every rule)", line=1, column=1)
    top = _mapping(root, "the file", ("rules",))
    if "rules" not in top:
        raise _at(root, "the file needs 'rules:' with a list of rules")
    seq = top["rules"][1]
    if isinstance(seq, yaml.ScalarNode) and _scalar(seq) is None:
        return []
    if not isinstance(seq, yaml.SequenceNode):
        raise _at(seq, f"'rules' must be a list, got {_kind(seq)}")
    if len(seq.value) > MAX_RULES:
        raise _at(seq, f"more than {MAX_RULES} rules")
    out: list[Rule] = []
    seen: dict[str, int] = {}
    for i, node in enumerate(seq.value):
        rule = _rule(node, i)
        if rule.name in seen:
            name_node = next(v for k, v in node.value if _scalar(k) == "name")
            raise _at(name_node, f"rule name {rule.name!r} is used twice (first at line "
                                 f"{seen[rule.name]}); names must be unique")
        seen[rule.name] = rule.line
        out.append(rule)
    return out


@functools.lru_cache(maxsize=1024)
def _parsed(condition: str) -> conditions.Condition:
    return conditions.parse(condition)
