"""What is personal in a string, and what becomes of it.

Five built-in categories: ``user`` (this machine's user names and any listed in the
rules), ``host`` (its host name and listed ones), ``home`` (home directories on
Linux, macOS and Windows: the name in them is a user), ``email`` and ``ip`` (v4 and
v6).  Each is pseudonymised (the default), removed or kept; a rules file (JSON or
TOML) can change that per category, list more names, add regular expressions and
drop params and tags by key.  One combined expression finds every built-in
category in a single pass, so a pseudonym is never itself rewritten again.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import json
import os
import re
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from .. import settings
from ..errors import InvalidArgument
from .pseudonyms import MIN_KEY_LENGTH, pseudonym

CATEGORIES = ("user", "host", "home", "email", "ip")
ACTIONS = ("pseudonymise", "remove", "keep")
REMOVED = "[removed]"

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_BUILTIN = (
    # Left boundaries keep a match from starting inside a longer token.
    r"(?P<email>(?<![\w.%+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+)"
    r"|(?P<home>(?:/home/|/Users/|(?<![\w])[A-Za-z]:[\\/]+"
    r"(?:Users|Documents and Settings)[\\/]+)(?P<home_user>[^\\/\s:;'\"<>|*?,=]+))"
    rf"|(?P<ipv4>(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}})(?!\w|\.\w)"
    r"|(?P<ipv6>(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{1,4})?"
    r"(?:%[\w.]+)?)(?![\w:]|\.\d)"
)
_NOT_A_PERSON = {"shared", "public", "default", "all users", "default user"}
_GIT_SERVICE = "git@"  # git@github.com:org/repo is a remote's address, not someone's mail


@dataclass(frozen=True, slots=True)
class Pattern:
    """A rules file's extra pattern: matches become ``category`` (its pseudonym prefix)."""

    regex: re.Pattern[str]
    category: str
    action: str


@dataclass(frozen=True, slots=True)
class Rules:
    actions: Mapping[str, str] = field(default_factory=lambda: dict.fromkeys(CATEGORIES,
                                                                             "pseudonymise"))
    users: tuple[str, ...] = ()
    hosts: tuple[str, ...] = ()
    patterns: tuple[Pattern, ...] = ()
    drop_keys: tuple[str, ...] = ()  # globs of param and tag keys never recorded


def _text(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgument(f"{where} must be a string, got {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgument(f"{where} is not valid Unicode (a lone surrogate): "
                              f"{value!r}") from None
    return value


def _strings(doc: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    items = doc.get(name, [])
    if not isinstance(items, list):
        raise InvalidArgument(f"{where}: {name!r} must be a list of strings")
    return tuple(_text(v, f"{where}: an entry of {name!r}") for v in items)


def _action(value: Any, where: str) -> str:
    if value not in ACTIONS:
        raise InvalidArgument(f"{where}: action {value!r} is not one of {', '.join(ACTIONS)}")
    return str(value)


def parse_rules(doc: Any, where: str = "anonymisation rules") -> Rules:
    """Rules from a parsed JSON/TOML document; every mistake is an InvalidArgument naming it."""
    if not isinstance(doc, dict):
        raise InvalidArgument(f"{where} must be a table/object at the top level")
    unknown = set(doc) - {"actions", "users", "hosts", "patterns", "drop_keys"}
    if unknown:
        raise InvalidArgument(f"{where}: unknown entries {sorted(unknown)}; expected actions, "
                              "users, hosts, patterns, drop_keys")
    actions = dict.fromkeys(CATEGORIES, "pseudonymise")
    raw_actions = doc.get("actions", {})
    if not isinstance(raw_actions, dict):
        raise InvalidArgument(f"{where}: 'actions' must map a category to an action")
    for cat, act in raw_actions.items():
        if cat not in CATEGORIES:
            raise InvalidArgument(f"{where}: unknown category {cat!r} in 'actions'; the "
                                  f"categories are {', '.join(CATEGORIES)}")
        actions[cat] = _action(act, f"{where}: actions.{cat}")
    patterns = []
    raw_patterns = doc.get("patterns", [])
    if not isinstance(raw_patterns, list):
        raise InvalidArgument(f"{where}: 'patterns' must be a list of tables/objects")
    for i, p in enumerate(raw_patterns, 1):
        at = f"{where}: pattern {i}"
        if not isinstance(p, dict) or "regex" not in p:
            raise InvalidArgument(f"{at} needs a 'regex'")
        source = _text(p["regex"], f"{at} regex")
        try:
            regex = re.compile(source)
        except re.error as exc:
            raise InvalidArgument(f"{at} has a bad regular expression {source!r}: {exc}") from None
        if regex.search("") is not None:
            raise InvalidArgument(f"{at}: the regular expression {source!r} matches the empty "
                                  "string, so it would match everywhere")
        category = _text(p.get("category", p.get("name", "custom")), f"{at} category")
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,31}", category):
            raise InvalidArgument(f"{at}: category {category!r} must be lower-case letters, "
                                  "digits, - or _ (it prefixes the pseudonym)")
        default = actions.get(category, "pseudonymise")
        patterns.append(Pattern(regex, category, _action(p.get("action", default), at)))
    return Rules(actions, _strings(doc, "users", where), _strings(doc, "hosts", where),
                 tuple(patterns), _strings(doc, "drop_keys", where))


def load_rules(path: str | os.PathLike[str]) -> Rules:
    """A rules file: ``.toml`` as TOML, anything else as JSON."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InvalidArgument(f"cannot read the anonymisation rules file {p}: "
                              f"{exc.strerror or exc}") from None
    try:
        if p.suffix.lower() == ".toml":
            import tomllib

            doc = tomllib.loads(data.decode("utf-8"))
        else:
            doc = json.loads(data)
    except (ValueError, UnicodeDecodeError) as exc:  # tomllib and json errors are ValueErrors
        raise InvalidArgument(f"the anonymisation rules file {p} is not valid "
                              f"{'TOML' if p.suffix.lower() == '.toml' else 'JSON'}: {exc}") from None
    return parse_rules(doc, f"rules file {p}")


def _local_users() -> tuple[str, ...]:
    names = {settings.USER.get(), os.environ.get("USER"), os.environ.get("USERNAME"),
             os.environ.get("LOGNAME"), Path.home().name}
    try:
        import getpass

        names.add(getpass.getuser())
    except Exception:  # no passwd entry (containers)
        pass
    return tuple(n for n in names if n)


def _local_hosts() -> tuple[str, ...]:
    name = socket.gethostname()
    return tuple({name, name.split(".")[0]} - {"", "localhost"})


_PSEUDONYM = re.compile(r"(user|host)-[0-9a-f]{8}")


def _done(category: str, value: str) -> bool:
    """Already a pseudonym of ``category`` (or removed): a run logged with anonymisation and
    exported with ``--anonymise`` keeps its pseudonym instead of getting one of it."""
    m = _PSEUDONYM.fullmatch(value)
    return value == REMOVED or (m is not None and m.group(1) == category)


class Anonymiser:
    """Applies :class:`Rules` with one key; built once per policy and reused."""

    def __init__(self, rules: Rules, key: bytes, *, local: bool = True) -> None:
        if len(key) < MIN_KEY_LENGTH:
            raise InvalidArgument(f"the anonymisation key must be at least {MIN_KEY_LENGTH} "
                                  "bytes: pseudonyms of a short key can be reversed by trying "
                                  "names")
        self.rules = rules
        self._key = key
        users = rules.users + (_local_users() if local else ())
        hosts = rules.hosts + (_local_hosts() if local else ())
        self._names: dict[str, str] = {}
        for cat, names in (("host", hosts), ("user", users)):  # a user wins a tie
            for n in names:
                if len(n) >= 2:
                    self._names[n.lower()] = cat
        alternatives = [_BUILTIN]
        if self._names:
            # Longest first, so "alice-smith" is one match, not "alice" and a leftover.
            joined = "|".join(re.escape(n) for n in sorted(self._names, key=len, reverse=True))
            alternatives.append(rf"(?P<name>(?<![\w-])(?:{joined})(?![\w-]))")
        self._regex = re.compile("|".join(alternatives), re.IGNORECASE)
        self._drop = rules.drop_keys
        self._env_memo: tuple[Any, Any] | None = None

    # -- values -------------------------------------------------------------
    def token(self, category: str, value: str, action: str | None = None) -> str:
        act = action or self.rules.actions.get(category, "pseudonymise")
        if act == "keep":
            return value
        if act == "remove":
            return REMOVED
        return pseudonym(self._key, category, value)

    def user(self, name: str) -> str:
        """A whole field that names a user (a run's user, ``mlflow.user``)."""
        return self.token("user", name) if name and not _done("user", name) else name

    def host(self, name: str) -> str:
        return self.token("host", name) if name and not _done("host", name) else name

    def text(self, value: str) -> str:
        """``value`` with every personal part replaced."""
        if not value:
            return value
        for p in self.rules.patterns:
            value = p.regex.sub(functools.partial(self._custom, p), value)
        return self._regex.sub(self._replace, value)

    def _custom(self, p: Pattern, m: re.Match[str]) -> str:
        return self.token(p.category, m.group(0), p.action)

    def _replace(self, m: re.Match[str]) -> str:
        kind = m.lastgroup if m.lastgroup != "home_user" else "home"
        found = m.group(0)
        if kind == "email":
            if found.lower().startswith(_GIT_SERVICE):
                return found
            return self.token("email", found)
        if kind == "home":
            who = m.group("home_user")
            if who.lower() in _NOT_A_PERSON:
                return found
            act = self.rules.actions["home"]
            if act == "keep":
                return found
            if act == "remove":
                return "~"
            return found[: -len(who)] + pseudonym(self._key, "user", who)
        if kind in ("ipv4", "ipv6"):
            try:
                addr = ipaddress.ip_address(found.split("%", 1)[0])
            except ValueError:
                return found  # 12:30:45 and such: not an address
            if addr.is_loopback or addr.is_unspecified:
                return found  # names no machine in particular
            return self.token("ip", found)
        if kind == "name":
            return self.token(self._names.get(found.lower(), "user"), found)
        return found

    def dropped(self, key: str) -> bool:
        return any(fnmatch.fnmatchcase(key, g) for g in self._drop)

    # -- structures -----------------------------------------------------------
    def mapping(self, values: Mapping[str, str], whole_users: tuple[str, ...] = ()) -> dict[str, str]:
        """Params or tags: values anonymised (keys kept), keys the rules drop left out;
        ``whole_users``: keys whose whole value is a user name."""
        return {k: (self.user(v) if k in whole_users else self.text(v))
                for k, v in values.items() if not self.dropped(k)}

    def env(self, env: Any) -> Any:
        """A captured environment: its user and host replaced whole, every other string
        anonymised (package versions excepted: 1.2.3.4 is a version there, not an address)."""
        memo = self._env_memo
        if memo is not None and memo[0] is env:
            return memo[1]
        out = self._walk(env, ())
        self._env_memo = (env, out)
        return out

    def _walk(self, value: Any, path: tuple[str, ...]) -> Any:
        if isinstance(value, str):
            if path in (("user",), ("git", "author"), ("git", "author_name")):
                return self.user(value)
            if path in (("hostname",), ("host",)):
                return self.host(value)
            return self.text(value)
        if isinstance(value, dict):
            if path == ("packages",):
                return dict(value)
            if path == ("env_vars",):
                return {k: self.text(v) if isinstance(v, str) else self._walk(v, (*path, k))
                        for k, v in value.items() if not self.dropped(k)}
            return {k: self._walk(v, (*path, str(k))) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self._walk(v, path) for v in value]
        return value


def _key() -> bytes:
    raw = settings.ANONYMISE_KEY.get()
    if not raw:
        raise InvalidArgument("anonymisation is on (CAIRN_ANONYMISE or CAIRN_ANONYMISE_RULES) "
                              "but CAIRN_ANONYMISE_KEY is not set: set it to a secret of at least "
                              f"{MIN_KEY_LENGTH} characters shared by your team (e.g. "
                              "`python -c 'import secrets; print(secrets.token_hex(32))'`)")
    return raw.encode("utf-8", "surrogateescape")


def active() -> Anonymiser | None:
    """The anonymiser the settings ask for, or None when anonymisation is off."""
    rules_path = settings.ANONYMISE_RULES.get()
    if not rules_path and not settings.ANONYMISE.get():
        return None
    return _built(rules_path, _key(), settings.USER.get())


@functools.lru_cache(maxsize=4)
def _built(rules_path: str, key: bytes, _user: str) -> Anonymiser:
    # Cached per (rules, key, user): a flush asks for it every second.  A rules file
    # edited while a process runs is read again only by a new process.
    rules = load_rules(rules_path) if rules_path else Rules()
    return Anonymiser(rules, key)


def from_key(key: str, rules_path: str | None = None, *, local: bool = False) -> Anonymiser:
    """An anonymiser for data that came from elsewhere (``cairn export``): by default no
    names of this machine are added, only those of the rules."""
    rules = load_rules(rules_path) if rules_path else Rules()
    return Anonymiser(rules, _text(key, "the anonymisation key").encode(), local=local)
