"""Semantic versions of model versions: ``MAJOR.MINOR.PATCH``, nothing else.

Pre-release and build suffixes (``1.0.0-rc1``) are refused: a registry version is a
release, and stages and aliases (``@staging``, ``@candidate``) say what is not yet one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import InvalidArgument

PARTS = ("major", "minor", "patch")
_RE = re.compile(r"(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})\.(0|[1-9][0-9]{0,8})")


@dataclass(frozen=True, slots=True, order=True)
class SemVer:
    major: int
    minor: int
    patch: int

    @classmethod
    def parse(cls, text: object) -> "SemVer":
        if isinstance(text, SemVer):
            return text
        m = _RE.fullmatch(text) if isinstance(text, str) else None
        if m is None:
            raise InvalidArgument(
                f"{text!r} is not a semantic version: use MAJOR.MINOR.PATCH such as '1.3.0' "
                "(numbers without leading zeros, no 'v' prefix or '-rc' suffix)", version=str(text))
        return cls(int(m[1]), int(m[2]), int(m[3]))

    def bump(self, part: str) -> "SemVer":
        part = check_part(part)
        if part == "major":
            return SemVer(self.major + 1, 0, 0)
        if part == "minor":
            return SemVer(self.major, self.minor + 1, 0)
        return SemVer(self.major, self.minor, self.patch + 1)

    def __str__(self) -> str:
        return f"{self.major}.{self.minor}.{self.patch}"


def check_part(part: object) -> str:
    if part not in PARTS:
        raise InvalidArgument(f"bump must be one of {', '.join(PARTS)}; got {part!r}", bump=part)
    return str(part)


def is_semver(text: object) -> bool:
    return isinstance(text, str) and _RE.fullmatch(text) is not None


FIRST = SemVer(1, 0, 0)
