"""The one error tree of Cairn.

Every error a user can trigger is a :class:`CairnError` subclass carrying an
``http_status`` and a stable ``error_code``, so the server can map it to JSON
and the HTTP client can map it back.  This module imports nothing from cairn.

::

    CairnError
    ├── NotFound              404  RESOURCE_DOES_NOT_EXIST
    ├── AlreadyExists         409  RESOURCE_ALREADY_EXISTS
    ├── InvalidArgument       400  INVALID_PARAMETER_VALUE
    │   ├── NoActiveRun
    │   └── InvalidFilter
    ├── Conflict              409  INVALID_STATE
    │   └── RunFinished
    ├── PermissionDenied      403  PERMISSION_DENIED
    ├── Unauthenticated       401  UNAUTHENTICATED
    ├── CorruptObject         500  DATA_LOSS
    │   └── InvalidSignature         (a model version's Ed25519 signature)
    ├── MissingDependency     501  MISSING_DEPENDENCY (an optional package, e.g. torch)
    ├── SchemaOutOfDate       500  SCHEMA_OUT_OF_DATE
    ├── TLSError              502  TLS_ERROR (a server's certificate does not verify)
    ├── EncryptionError       500  ENCRYPTION_KEY_ERROR (a master key missing, wrong or malformed)
    └── StoreUnavailable      503  TEMPORARILY_UNAVAILABLE
        ├── StoreBusy                (a lock held elsewhere; the transaction was rolled back)
        └── StorageFull              (no space left on device, or the disk quota is used up)

:func:`from_os_error` turns an ``OSError`` met while writing into the store (a full disk,
an I/O error, a read-only file system) into one of these, naming the path.
"""

from __future__ import annotations

import errno
import os
from typing import Any


class CairnError(Exception):
    """Root of every error Cairn raises on purpose."""

    http_status: int = 500
    error_code: str = "INTERNAL_ERROR"

    def __init__(self, message: str, **details: Any) -> None:
        super().__init__(message)
        self.message = message
        self.details = details

    def to_dict(self) -> dict[str, Any]:
        return {"error_code": self.error_code, "message": self.message, **self.details}


class NotFound(CairnError):
    http_status = 404
    error_code = "RESOURCE_DOES_NOT_EXIST"


class AlreadyExists(CairnError):
    http_status = 409
    error_code = "RESOURCE_ALREADY_EXISTS"


class InvalidArgument(CairnError):
    http_status = 400
    error_code = "INVALID_PARAMETER_VALUE"


class NoActiveRun(InvalidArgument):
    """A fluent call that needs a run was made outside ``start_run``."""


class InvalidFilter(InvalidArgument):
    """A search filter or order_by clause could not be parsed."""


class Conflict(CairnError):
    http_status = 409
    error_code = "INVALID_STATE"


class RunFinished(Conflict):
    """Params and metrics of a finished run are immutable."""


class PermissionDenied(CairnError):
    http_status = 403
    error_code = "PERMISSION_DENIED"


class Unauthenticated(CairnError):
    http_status = 401
    error_code = "UNAUTHENTICATED"


class CorruptObject(CairnError):
    http_status = 500
    error_code = "DATA_LOSS"


class InvalidSignature(CorruptObject):
    """A signature does not verify, or a required signature is missing or untrusted."""


class MissingDependency(CairnError):
    """An optional package (a framework, ``cryptography``) is needed but not installed."""

    http_status = 501
    error_code = "MISSING_DEPENDENCY"


class SchemaOutOfDate(CairnError):
    http_status = 500
    error_code = "SCHEMA_OUT_OF_DATE"


class TLSError(CairnError):
    """A client's TLS handshake with a Cairn server failed: its certificate does not
    verify, or it does not speak TLS.  Not a :class:`StoreUnavailable`: waiting does not
    mend it, so records are not spooled for later as they are for an absent server."""

    http_status = 502
    error_code = "TLS_ERROR"


class EncryptionError(CairnError):
    """An encrypted object store cannot be used with the key given: no master key, a key
    that is not the store's, a malformed key or key file.  Nothing was read or written.
    Messages name the setting (``CAIRN_MASTER_KEY`` ...), never the key."""

    http_status = 500
    error_code = "ENCRYPTION_KEY_ERROR"


class StoreUnavailable(CairnError):
    http_status = 503
    error_code = "TEMPORARILY_UNAVAILABLE"


class StoreBusy(StoreUnavailable):
    """The index is locked by another writer (SQLite's "database is locked"): the
    transaction was rolled back and may simply be tried again."""


class StorageFull(StoreUnavailable):
    """The disk (or the disk quota) holding the store is full: ENOSPC or EDQUOT.

    Nothing half-written is left behind; once space is freed the same call works."""


# What an errno means for whoever wrote: the words after the path in the message.
_OS_ERRORS: dict[int, str] = {
    errno.ENOSPC: "no space left on device",
    errno.EIO: "input/output error (the disk or the network file system failed)",
    errno.EROFS: "read-only file system",
    errno.EFBIG: "file too large for the file system",
}
if hasattr(errno, "EDQUOT"):  # not on Windows
    _OS_ERRORS[errno.EDQUOT] = "disk quota exceeded (no space left on device for this user)"
# The errnos that say the disk failed a write, whatever was being written.
DISK_ERRNOS = frozenset(_OS_ERRORS)


def from_os_error(exc: OSError, action: str, path: str | os.PathLike[str] | None = None,
                  advice: str = "") -> CairnError:
    """The :class:`CairnError` for ``exc``, which made ``action`` fail
    (``"could not write object"``).

    ENOSPC and EDQUOT give :class:`StorageFull`, a denied permission
    :class:`PermissionDenied`, anything else (EIO, EROFS, EFBIG ...)
    :class:`StoreUnavailable`.  The message names ``path`` (else the error's own file
    name) and ends with ``advice`` when given.
    """
    where = path if path is not None else exc.filename
    what = _OS_ERRORS.get(exc.errno or 0) or (exc.strerror or str(exc)).lower()
    message = f"{action}" + (f" {os.fspath(where)}" if where is not None else "") + f": {what}"
    if advice:
        message += f"; {advice}"
    details: dict[str, Any] = {"errno": exc.errno}
    if where is not None:
        details["path"] = os.fspath(where)
    if exc.errno in (errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)):
        return StorageFull(message, **details)
    if isinstance(exc, PermissionError):
        return PermissionDenied(message, **details)
    return StoreUnavailable(message, **details)


_BY_CODE: dict[str, type[CairnError]] = {}
for _cls in (NotFound, AlreadyExists, InvalidArgument, Conflict, PermissionDenied,
             Unauthenticated, CorruptObject, MissingDependency, SchemaOutOfDate, StoreUnavailable,
             EncryptionError):
    _BY_CODE.setdefault(_cls.error_code, _cls)


def from_dict(payload: dict[str, Any]) -> CairnError:
    """Rebuild an error from :meth:`CairnError.to_dict` output (used by HTTP clients)."""
    data = dict(payload)
    code = data.pop("error_code", "INTERNAL_ERROR")
    message = data.pop("message", code)
    return _BY_CODE.get(code, CairnError)(message, **data)
