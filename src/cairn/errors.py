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
    └── StoreUnavailable      503  TEMPORARILY_UNAVAILABLE
"""

from __future__ import annotations

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


class StoreUnavailable(CairnError):
    http_status = 503
    error_code = "TEMPORARILY_UNAVAILABLE"


_BY_CODE: dict[str, type[CairnError]] = {}
for _cls in (NotFound, AlreadyExists, InvalidArgument, Conflict, PermissionDenied,
             Unauthenticated, CorruptObject, MissingDependency, SchemaOutOfDate, StoreUnavailable):
    _BY_CODE.setdefault(_cls.error_code, _cls)


def from_dict(payload: dict[str, Any]) -> CairnError:
    """Rebuild an error from :meth:`CairnError.to_dict` output (used by HTTP clients)."""
    data = dict(payload)
    code = data.pop("error_code", "INTERNAL_ERROR")
    message = data.pop("message", code)
    return _BY_CODE.get(code, CairnError)(message, **data)
