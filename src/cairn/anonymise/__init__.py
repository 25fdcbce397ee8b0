"""Anonymisation: personal data replaced by keyed pseudonyms before it leaves the machine.

:mod:`.rules` says what counts as personal (user and host names, home directories,
e-mail and IP addresses, patterns of a rules file) and what becomes of it;
:mod:`.pseudonyms` turns a value into a stable pseudonym with the team's key;
:mod:`.records` applies a policy to a run's records.  What works on a whole store
(:mod:`cairn.lifecycle.export` copies runs into a new store through the rules,
:mod:`cairn.lifecycle.erase` erases one person's data) sits a layer up, in
:mod:`cairn.lifecycle`: the client's writer imports this package, so it stays light.
"""

from __future__ import annotations

from .pseudonyms import pseudonym
from .rules import CATEGORIES, Anonymiser, Rules, active, load_rules

__all__ = ["CATEGORIES", "Anonymiser", "Rules", "active", "load_rules", "pseudonym"]
