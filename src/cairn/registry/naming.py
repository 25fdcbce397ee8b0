"""Model names: what any name may contain, and the registry's optional naming policy.

A policy is a template such as ``{project}_{model_type}`` (each ``{field}`` is one
or more letters, digits or ``-``) or a regular expression; new models must match it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, TypeGuard

from ..errors import InvalidArgument

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,255}")
_ALIAS = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,127}")
_FIELD = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
RESERVED_ALIASES = ("latest",)


def is_model_name(name: object) -> TypeGuard[str]:
    """Whether ``name`` may name a model (every registered model's name passes)."""
    return isinstance(name, str) and _NAME.fullmatch(name) is not None


def check_name(name: object) -> str:
    if not is_model_name(name):
        raise InvalidArgument(f"model name {name!r} is invalid: use letters, digits, '.', '_' "
                              "and '-', starting with a letter or digit (no '/' or '@')", name=name)
    return name


def check_alias(alias: object) -> str:
    from .entities import Stage

    if not isinstance(alias, str) or not _ALIAS.fullmatch(alias):
        raise InvalidArgument(f"alias {alias!r} is invalid: use letters, digits, '_' and '-', "
                              "starting with a letter", alias=alias)
    if Stage.is_stage(alias) or alias.lower() in RESERVED_ALIASES:
        raise InvalidArgument(f"alias {alias!r} is reserved (stage names and 'latest' are "
                              "resolved by the registry itself); pick another", alias=alias)
    return alias


@dataclass(frozen=True, slots=True)
class NamingPolicy:
    template: str | None = None
    regex: str | None = None

    @property
    def pattern(self) -> re.Pattern[str]:
        if self.template is not None:
            return template_regex(self.template)
        return re.compile(self.regex or ".*")

    def describe(self) -> str:
        return f"template {self.template!r}" if self.template else f"regex {self.regex!r}"

    def check(self, name: str) -> None:
        if not self.pattern.fullmatch(name):
            example = ""
            if self.template:
                example = " such as " + repr(_FIELD.sub(lambda m: m[1].replace("_", "-"),
                                                        self.template))
            raise InvalidArgument(f"model name {name!r} does not follow this registry's naming "
                                  f"policy ({self.describe()}); use a name{example}",
                                  name=name, policy=self.describe())

    def to_json(self) -> dict[str, Any]:
        return {"template": self.template, "regex": self.regex}


def template_regex(template: str) -> re.Pattern[str]:
    parts, pos = [], 0
    for m in _FIELD.finditer(template):
        parts.append(re.escape(template[pos:m.start()]))
        parts.append(r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*")
        pos = m.end()
    parts.append(re.escape(template[pos:]))
    return re.compile("".join(parts))


def make_policy(template: str | None, regex: str | None) -> NamingPolicy | None:
    if template is not None and regex is not None:
        raise InvalidArgument("give a naming template or a regex, not both")
    if template is not None:
        if not isinstance(template, str) or not _FIELD.search(template):
            raise InvalidArgument(f"naming template {template!r} needs at least one {{field}}, "
                                  "e.g. '{project}_{model_type}'")
        return NamingPolicy(template=template)
    if regex is not None:
        try:
            re.compile(regex)
        except (re.error, TypeError) as exc:
            raise InvalidArgument(f"naming regex {regex!r} does not compile: {exc}") from None
        return NamingPolicy(regex=regex)
    return None
