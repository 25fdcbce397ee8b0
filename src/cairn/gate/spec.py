"""What a gate checks: metric rules, requirements and test settings, from arguments or a
rules file (``--rules gate.yaml``).

::

    against: "@production"          # the baseline (default @production)
    metrics:                        # metric rules (cairn.gate.rules)
      - val_auc >= baseline - 0.005
      - latency_ms <= baseline * 1.1
    significance: 0.05              # one-sided test across seeds at this level (default: none)
    across: [seed]                  # the params that tell seed runs apart (default [seed])
    test: welch                     # or mann-whitney
    require: [approval, signature, lineage]
    require_baseline: false         # no baseline (a first release) fails instead of skipping
    require_significance: false     # a test that cannot run (one run a side) fails
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Sequence

from ..errors import InvalidArgument, MissingDependency
from .rules import MetricRule, parse_rule
from .seeds import TESTS

REQUIREMENTS = ("approval", "signature", "lineage")
DEFAULT_AGAINST = "@production"
DEFAULT_ACROSS = ("seed",)
FILE_KEYS = ("against", "metrics", "significance", "across", "test", "require",
             "require_baseline", "require_significance")
MAX_FILE = 1 << 20


@dataclass(frozen=True, slots=True)
class GateSpec:
    rules: tuple[MetricRule, ...] = ()
    require: tuple[str, ...] = ()
    against: str = DEFAULT_AGAINST
    significance: float | None = None
    across: tuple[str, ...] = DEFAULT_ACROSS
    test: str = "welch"
    require_baseline: bool = False
    require_significance: bool = False
    sources: tuple[str, ...] = field(default=())  # the rules files read

    def merged(self, *, rules: Iterable[str] = (), require: Iterable[str] = (),
               against: str | None = None, significance: float | None = None,
               across: Sequence[str] | None = None, test: str | None = None,
               require_baseline: bool = False, require_significance: bool = False) -> "GateSpec":
        """This spec with the given rules and requirements added and the given settings
        replacing its own (what ``cairn check``'s flags do to a rules file)."""
        new_rules = tuple(self.rules) + tuple(parse_rule(r) for r in rules)
        spec = replace(self, rules=_unique(new_rules),
                       require=tuple(dict.fromkeys([*self.require, *parse_requirements(require)])),
                       require_baseline=self.require_baseline or require_baseline,
                       require_significance=self.require_significance or require_significance)
        if against is not None:
            spec = replace(spec, against=check_against(against))
        if significance is not None:
            spec = replace(spec, significance=check_significance(significance))
        if across is not None:
            spec = replace(spec, across=check_across(across))
        if test is not None:
            spec = replace(spec, test=check_test(test))
        return spec


def _unique(rules: tuple[MetricRule, ...]) -> tuple[MetricRule, ...]:
    return tuple({r.text: r for r in rules}.values())


def parse_requirements(items: Iterable[Any]) -> tuple[str, ...]:
    """``["approval,signature", "lineage"]`` -> ``("approval", "signature", "lineage")``."""
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise InvalidArgument(f"a requirement must be a string ({', '.join(REQUIREMENTS)}), "
                                  f"got {type(item).__name__} {item!r}")
        for part in item.split(","):
            name = part.strip().lower()
            if not name:
                continue
            if name not in REQUIREMENTS:
                raise InvalidArgument(f"unknown requirement {part.strip()!r}; use "
                                      f"{', '.join(REQUIREMENTS)}", requirement=part.strip())
            out.append(name)
    return tuple(dict.fromkeys(out))


def check_significance(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or \
            not math.isfinite(value) or not 0 < value < 1:
        raise InvalidArgument(f"significance must be a number between 0 and 1 (e.g. 0.05), "
                              f"got {value!r}")
    return float(value)


def check_across(value: Any) -> tuple[str, ...]:
    from ..store.validation import check_key

    items = [value] if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise InvalidArgument(f"across must name one or more params (e.g. seed), got {value!r}")
    return tuple(dict.fromkeys(check_key(a, "param") for a in items))


def check_test(value: Any) -> str:
    if value not in TESTS:
        raise InvalidArgument(f"unknown test {value!r}; use {' or '.join(TESTS)}")
    return str(value)


def check_against(value: Any) -> str:
    from ..store.validation import check_text

    if not isinstance(value, str) or not value.strip():
        raise InvalidArgument(f"--against needs a baseline such as @production, @champion, "
                              f"Production or models:/NAME/1.0.0, got {value!r}")
    return check_text(value, "--against").strip()


def load_spec(path: str | os.PathLike[str]) -> GateSpec:
    """The spec in the YAML rules file ``path`` (keys: see this module)."""
    try:
        import yaml  # type: ignore[import-untyped]
    except ImportError:
        raise MissingDependency("a rules file needs PyYAML: pip install 'cairn[monitor]'") \
            from None
    where = os.fspath(path)
    try:
        with open(where, "rb") as f:
            raw = f.read(MAX_FILE + 1)
    except FileNotFoundError:
        raise InvalidArgument(f"rules file {where} does not exist") from None
    except OSError as exc:
        raise InvalidArgument(f"rules file {where} cannot be read: {exc.strerror or exc}") \
            from None
    if len(raw) > MAX_FILE:
        raise InvalidArgument(f"rules file {where} is larger than {MAX_FILE} bytes")
    try:
        data = yaml.safe_load(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise InvalidArgument(f"rules file {where} is not UTF-8 text ({exc.reason} at byte "
                              f"{exc.start})") from None
    except yaml.YAMLError as exc:
        raise InvalidArgument(f"rules file {where} is not valid YAML: {exc}") from None
    return replace(spec_from_dict(data if data is not None else {}, where), sources=(where,))


def spec_from_dict(data: Any, where: str = "rules") -> GateSpec:
    """The spec a rules file's parsed YAML ``data`` holds; errors start with ``where``."""
    try:
        return _spec(data)
    except InvalidArgument as exc:
        raise InvalidArgument(f"{where}: {exc.message}", **exc.details) from None


def _spec(data: Any) -> GateSpec:
    if not isinstance(data, dict):
        raise InvalidArgument(f"the top level must be a mapping with keys {', '.join(FILE_KEYS)}")
    unknown = sorted(str(k) for k in data if k not in FILE_KEYS)
    if unknown:
        raise InvalidArgument(f"unknown key(s) {', '.join(unknown)}; the keys are "
                              f"{', '.join(FILE_KEYS)}")
    metrics = data.get("metrics") or []
    if not isinstance(metrics, list):
        raise InvalidArgument("metrics must be a list of rules such as "
                              "'val_auc >= baseline - 0.005'")
    rules = []
    for i, text in enumerate(metrics):
        try:
            rules.append(parse_rule(text))
        except InvalidArgument as exc:
            raise InvalidArgument(f"metrics[{i}]: {exc.message}", **exc.details) from None
    require = data.get("require") or []
    if isinstance(require, str):
        require = [require]
    if not isinstance(require, list):
        raise InvalidArgument(f"require must be a list ({', '.join(REQUIREMENTS)})")
    flags = {}
    for key in ("require_baseline", "require_significance"):
        value = data.get(key, False)
        if not isinstance(value, bool):
            raise InvalidArgument(f"{key} must be true or false, got {value!r}")
        flags[key] = value
    spec = GateSpec(rules=_unique(tuple(rules)), require=parse_requirements(require),
                    require_baseline=flags["require_baseline"],
                    require_significance=flags["require_significance"])
    return spec.merged(against=data.get("against"), significance=data.get("significance"),
                       across=data.get("across"), test=data.get("test"))
