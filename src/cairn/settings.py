"""Settings, declared once as typed data.

Each setting is read from its environment variable when asked for (never at
import), so tests and users can change them at any time.  ``docs/settings.md`` is
checked against this list by a test.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Any, Callable

from .errors import InvalidArgument


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError(f"expected a boolean (1/0, true/false), got {text!r}")


_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "kib": 1024, "m": 1000 ** 2, "mb": 1000 ** 2,
          "mib": 1024 ** 2, "g": 1000 ** 3, "gb": 1000 ** 3, "gib": 1024 ** 3}


def _bytes(text: str) -> int:
    """A size: ``104857600``, ``100MiB``, ``1.5 GB`` (k, M, G: powers of 1000; KiB, MiB, GiB:
    powers of 1024)."""
    stripped = text.strip()
    number = stripped.rstrip("KMGiBkmgb ")
    unit = stripped[len(number):].strip().lower()
    try:
        value = int(float(number) * _UNITS[unit])
    except (KeyError, ValueError, OverflowError):
        raise ValueError(f"expected a size in bytes such as 104857600 or 100MiB, "
                         f"got {text!r}") from None
    if value < 0:
        raise ValueError(f"a size cannot be negative: {text!r}")
    return value


@dataclass(frozen=True, slots=True)
class Setting:
    name: str
    type: Callable[[str], Any]
    default: Any
    help: str

    def get(self) -> Any:
        raw = os.environ.get(self.name)
        if raw is None or raw == "":
            return self.default
        try:
            return self.type(raw)
        except ValueError as exc:
            raise InvalidArgument(f"environment variable {self.name}={raw!r} is invalid: {exc}") from None


TRACKING_URI = Setting("CAIRN_TRACKING_URI", str, ".cairn",
                       "Where runs are recorded: a directory path (local store) or a server URL.")
USER = Setting("CAIRN_USER", str, "",
               "The acting user recorded on runs; empty means the operating-system user.")
FLUSH_INTERVAL = Setting("CAIRN_FLUSH_INTERVAL", float, 1.0,
                         "Seconds between background flushes of buffered records to the store.")
HEARTBEAT_INTERVAL = Setting("CAIRN_HEARTBEAT_INTERVAL", float, 5.0,
                             "Seconds between heartbeats of a running run.")
HEARTBEAT_TIMEOUT = Setting("CAIRN_HEARTBEAT_TIMEOUT", float, 60.0,
                            "Seconds without a heartbeat after which a RUNNING run is shown as KILLED.")
FSYNC = Setting("CAIRN_FSYNC", _bool, False,
                "fsync every journal append, for durability against power loss, not only process crashes.")
INDEX_DELAY = Setting("CAIRN_INDEX_DELAY", float, 0.01,
                      "Seconds a local store's index write may wait to share one transaction with "
                      "the writes that follow (the journal has the data already; reads never see "
                      "the wait); 0 applies each write on its own.")
CAPTURE_ENV = Setting("CAIRN_CAPTURE_ENV", _bool, True,
                      "Record git state, Python, packages, OS and hardware on every run.")
# Read by cairn.environment itself (a leaf module that imports no settings); named here so
# that docs/settings.md lists them with the others.
CAPTURE_SOURCE_MAX_FILE = Setting(
    "CAIRN_CAPTURE_SOURCE_MAX_FILE", _bytes, 1_000_000,
    "Largest untracked file (without git: source file) a run stores for `cairn reproduce`; "
    "larger ones are listed as skipped.")
CAPTURE_SOURCE_MAX_TOTAL = Setting(
    "CAIRN_CAPTURE_SOURCE_MAX_TOTAL", _bytes, 10_000_000,
    "Most bytes of uncommitted diff and untracked files a process stores for `cairn reproduce`.")
CAPTURE_ENV_VARS = Setting(
    "CAIRN_CAPTURE_ENV_VARS", str, "",
    "Comma-separated names or patterns of environment variables recorded on runs besides the "
    "built-in allow-list (names that look like secrets never are).")
IMAGE = Setting("CAIRN_IMAGE", str, "",
                "The container image runs execute in, recorded in their environment.")
IMAGE_DIGEST = Setting("CAIRN_IMAGE_DIGEST", str, "",
                       "That image's digest (sha256:...), recorded in their environment.")

TRACKING_TOKEN = Setting("CAIRN_TRACKING_TOKEN", str, "",
                         "API token sent to a Cairn server (tracking URI http:// or https://).")
SPOOL_DIR = Setting("CAIRN_SPOOL_DIR", str, "",
                    "Where records for a server wait until it acknowledges them; empty means "
                    "~/.cache/cairn/spool.")
SPOOL_DRAIN_TIMEOUT = Setting("CAIRN_SPOOL_DRAIN_TIMEOUT", float, 10.0,
                              "Seconds a run that ends while its server is unreachable waits for "
                              "it before leaving its last records in the spool.")
CA_BUNDLE = Setting("CAIRN_CA_BUNDLE", str, "",
                    "The CA certificates (a PEM file, or a directory of them) that an https:// "
                    "server's certificate must chain to, instead of the system's.")
TLS_VERIFY = Setting("CAIRN_TLS_VERIFY", _bool, True,
                     "Check an https:// server's certificate; false checks nothing (warned about "
                     "once per server): anyone on the network path can read and change what is "
                     "sent.")

AUTOLOG_MAX_DATASET_BYTES = Setting(
    "CAIRN_AUTOLOG_MAX_DATASET_BYTES", _bytes, 100 * 1024 ** 2,
    "Largest training data (in memory, features and targets together) that autolog stores as a "
    "data set version; bigger data is only tagged with its digest and shape, and 0 stores none.")

ANONYMISE = Setting("CAIRN_ANONYMISE", _bool, False,
                    "Replace user and host names, home paths, e-mail and IP addresses in params, "
                    "tags, run users and captured environments by keyed pseudonyms before "
                    "anything is written (needs CAIRN_ANONYMISE_KEY).")
ANONYMISE_KEY = Setting("CAIRN_ANONYMISE_KEY", str, "",
                        "The secret (at least 16 characters) that pseudonyms are keyed with: "
                        "share it within a team so one person gets one pseudonym everywhere.")
ANONYMISE_RULES = Setting("CAIRN_ANONYMISE_RULES", str, "",
                          "A JSON or TOML file of anonymisation rules (actions per category, "
                          "extra names and patterns, keys to drop); setting it turns "
                          "anonymisation on.")

# Read only by cairn.cas.keyprovider, which parses them itself so that no error can echo a key.
MASTER_KEY = Setting("CAIRN_MASTER_KEY", str, "",
                     "The 256-bit master key (base64) that encrypts a store's objects at rest; "
                     "never printed or logged.")
MASTER_KEY_FILE = Setting("CAIRN_MASTER_KEY_FILE", str, "",
                          "A file (mode 600) holding the master key in base64, instead of "
                          "CAIRN_MASTER_KEY.")
MASTER_KEY_OLD = Setting("CAIRN_MASTER_KEY_OLD", str, "",
                         "A previous master key (base64) to read objects that a key rotation "
                         "has not re-wrapped yet.")
KEY_PROVIDER = Setting("CAIRN_KEY_PROVIDER", str, "",
                       "module:factory of another key provider (a cloud KMS) instead of the "
                       "master key settings.")


def _days(text: str) -> float:
    value = float(text)
    if not value >= 0 or value == float("inf"):
        raise ValueError(f"expected a number of days, 0 or more, got {text!r}")
    return value


TRASH_DAYS = Setting("CAIRN_TRASH_DAYS", _days, 30.0,
                     "Days a deleted run, experiment, data set version or model version stays "
                     "in the trash (restorable) before `cairn gc` purges it for good.")


_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800, None: 1}


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``0``, ``90`` (seconds), ``90s``, ``30m``, ``12h``, ``1d``, ``2w``,
    or several (``1d12h``)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"expected a duration such as 0, 30m, 12h or 1d, got {text!r}")
    total, pos = 0.0, 0
    while pos < len(text):
        m = _DURATION.match(text, pos)
        if m is None or m.end() == pos:
            raise ValueError(f"expected a duration such as 0, 30m, 12h or 1d, got {text!r}")
        total += float(m.group(1)) * _UNIT_S[(m.group(2) or "").lower() or None]
        pos = m.end()
    return total


def _duration(text: str) -> float:
    return parse_duration(text)


GC_GRACE = Setting("CAIRN_GC_GRACE", _duration, 86400.0,
                   "How long a new object is safe from `cairn gc` whatever refers to it: "
                   "seconds, or 30m, 12h, 1d (never less than 30 s in effect; 0 only for "
                   "stores nobody else writes to).")

COLD_OBJECTS = Setting("CAIRN_COLD_OBJECTS", str, "",
                       "A cold tier for a store's objects (a directory or s3://bucket/prefix), "
                       "recorded in the store on first use; `cairn tier` moves objects unread "
                       "for CAIRN_TIER_AFTER_DAYS there, and reads find them there.")
COLD_ENDPOINT_URL = Setting("CAIRN_COLD_ENDPOINT_URL", str, "",
                            "S3-compatible endpoint (MinIO, Ceph, ...) of an s3:// cold tier.")
TIER_AFTER_DAYS = Setting("CAIRN_TIER_AFTER_DAYS", _days, 30.0,
                          "Days an object stays unread before `cairn tier` moves it to the cold "
                          "tier.")

SETTINGS: tuple[Setting, ...] = (
    TRACKING_URI, USER, FLUSH_INTERVAL, HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT, FSYNC, INDEX_DELAY,
    CAPTURE_ENV, CAPTURE_SOURCE_MAX_FILE, CAPTURE_SOURCE_MAX_TOTAL, CAPTURE_ENV_VARS, IMAGE,
    IMAGE_DIGEST,
    TRACKING_TOKEN, SPOOL_DIR, SPOOL_DRAIN_TIMEOUT, CA_BUNDLE, TLS_VERIFY,
    AUTOLOG_MAX_DATASET_BYTES,
    MASTER_KEY, MASTER_KEY_FILE, MASTER_KEY_OLD, KEY_PROVIDER,
    ANONYMISE, ANONYMISE_KEY, ANONYMISE_RULES,
    TRASH_DAYS, GC_GRACE,
    COLD_OBJECTS, COLD_ENDPOINT_URL, TIER_AFTER_DAYS,
)
