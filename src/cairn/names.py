"""Memorable default run names ("bold-heron-417"), derived from the run id so they are stable."""

from __future__ import annotations

_ADJECTIVES = (
    "able", "bold", "brave", "bright", "calm", "clever", "crisp", "dapper", "eager", "fair",
    "fast", "gentle", "glad", "grand", "keen", "kind", "lucid", "lively", "merry", "mighty",
    "neat", "nimble", "noble", "polite", "proud", "quick", "quiet", "rapid", "sharp", "shy",
    "silent", "sleek", "smart", "snug", "steady", "sunny", "swift", "tidy", "vivid", "witty",
)
_NOUNS = (
    "badger", "bison", "crane", "dingo", "eagle", "falcon", "ferret", "finch", "gecko", "heron",
    "ibex", "jackal", "koala", "lemur", "lynx", "marten", "moose", "newt", "ocelot", "orca",
    "otter", "panda", "puffin", "quail", "raven", "robin", "salmon", "seal", "shrew", "sloth",
    "stoat", "swan", "tapir", "tern", "toad", "trout", "viper", "walrus", "wombat", "yak",
)


def random_name(run_id: str) -> str:
    try:
        n = int(run_id[:12], 16)
    except ValueError:
        n = int.from_bytes(run_id.encode()[:12].ljust(12, b"\0"), "big")
    adj = _ADJECTIVES[n % len(_ADJECTIVES)]
    noun = _NOUNS[(n // len(_ADJECTIVES)) % len(_NOUNS)]
    return f"{adj}-{noun}-{(n // 1600) % 1000}"
