"""The model registry of a Cairn server, with the same Python API as :class:`Registry`.

``cairn.Client("http://host:5000")`` (or ``cairn.set_tracking_uri``) gets a
:class:`RemoteRegistry`: each method is one or two requests to the server's
``/api/v1/models`` endpoints, and the server's registry applies them (with its
own history and audit events, the caller's token as actor).  Errors come back as
the same classes a local registry raises.

Registering a live Python object cannot happen on the server (it would have to
unpickle what a client sent), so :meth:`RemoteRegistry.register_model` saves the
model here, exactly as the local registry does, uploads only the objects the
server lacks, and asks the server to register those files; inside a run the
server records the run's params, metrics and data set inputs and lists the files
among the run's artifacts under ``models/NAME/VERSION/``.

Loading resolves the reference on the server, then checks the record digest, the
signature (against ``trusted_keys=``: the server does not publish its keys yet)
and every file's digest as it is fetched into the local cache
(:mod:`cairn.registry.loading`).

Not available remotely: signing with a local private key, the naming policy and
the trusted keys (both administered on the server's store), and listing the
versions a run produced.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import urllib.parse
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from ..errors import AlreadyExists, InvalidArgument, NotFound
from . import flavors as fl
from .entities import (
    Approval, AuditEvent, AuditProblem, AuditReport, HistoryEvent, ModelVersion, RegisteredModel,
    Stage, StagePolicy, TransitionRequest,
)
from .naming import check_alias, check_name
from .reading import VersionReading
from .semver import SemVer
from .service import (
    _parent_ref, check_registration, normalize_datasets, package_model, parse_ref,
)
from .workflow import to_ms

if TYPE_CHECKING:  # pragma: no cover
    from ..client import Client


def _q(segment: str) -> str:
    return urllib.parse.quote(str(segment), safe="")


def _unsupported(what: str, instead: str) -> InvalidArgument:
    return InvalidArgument(f"{what} is not available against a Cairn server; {instead}")


class RemoteRegistry(VersionReading):
    """:class:`~cairn.registry.service.Registry`'s API over a server's REST API."""

    def __init__(self, client: "Client") -> None:
        self._client = client

    # -- plumbing --------------------------------------------------------
    @property
    def user(self) -> str:
        return self._client.user

    @property
    def store(self) -> Any:
        return self._client.store

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        return self.store.call(method, path, **kw)

    # -- registered models -----------------------------------------------
    def create_registered_model(self, name: str, description: str = "",
                                tags: Mapping[str, str] | None = None) -> RegisteredModel:
        check_name(name)
        return _model(self._call("POST", "/models", json={
            "name": name, "description": description or "", "tags": dict(tags or {})}))

    def get_registered_model(self, name: str) -> RegisteredModel:
        return _model(self._call("GET", f"/models/{_q(name)}"))

    def list_registered_models(self) -> list[RegisteredModel]:
        return [_model(d) for d in self._call("GET", "/models")]

    def set_naming_policy(self, template: str | None = None, regex: str | None = None):
        raise _unsupported("setting the naming policy",
                           "an administrator sets it on the server's store: `cairn models naming "
                           "--template ...` with CAIRN_TRACKING_URI set to its database")

    def get_naming_policy(self):
        raise _unsupported("reading the naming policy",
                           "the server refuses names that break it when a model is created")

    # -- versions --------------------------------------------------------
    def get_model_version(self, name: str, version: str) -> ModelVersion:
        version = str(SemVer.parse(version))
        return _version(self._call("GET", f"/models/{_q(name)}/versions/{_q(version)}"))

    def list_model_versions(self, name: str, stage: str | None = None) -> list[ModelVersion]:
        """Versions of ``name`` in semver order (oldest first), optionally of one stage."""
        params = {} if stage is None else {"stage": Stage.parse(stage).value}
        return [_version(d) for d in self._call("GET", f"/models/{_q(name)}/versions",
                                                params=params)]

    def latest_model_version(self, name: str) -> ModelVersion:
        latest = self.get_registered_model(name).latest_version
        if latest is None:
            raise NotFound(f"model {name!r} has no versions yet", name=name)
        return self.get_model_version(name, latest)

    def model_versions_of_run(self, run_id: str) -> list[ModelVersion]:
        raise _unsupported("listing the versions a run produced",
                           "list a model's versions and compare their source_run_id")

    def resolve(self, ref: Any) -> ModelVersion:
        """``name/1.3.0``, ``name@production`` (a stage), ``name@champion`` (an alias), ``name@latest``."""
        name, kind, value = parse_ref(ref)
        if kind == "version":
            return self.get_model_version(name, value)
        if kind == "latest":
            return self.latest_model_version(name)
        if kind == "stage":
            mvs = self.list_model_versions(name, value)
            if not mvs:
                raise NotFound(f"model {name!r} has no version in {value}; `cairn models "
                               f"versions {name}` shows the stages", name=name, stage=value)
            # As the local registry: the one that entered the stage last.
            return max(mvs, key=lambda m: (m.stage_since, SemVer.parse(m.version)))
        aliases = self.get_registered_model(name).aliases
        version = aliases.get(value)
        if version is None:
            known = ", ".join(sorted(aliases)) or "none"
            raise NotFound(f"model {name!r} has no alias {value!r} (aliases: {known})",
                           name=name, alias=value)
        return self.get_model_version(name, version)

    # -- registering -----------------------------------------------------
    def register_model(self, name: str, model: Any, *, run_id: str | None = None,
                       input_example: Any = None, signature: Mapping[str, Any] | None = None,
                       flavor: str | None = None, version: str | None = None,
                       bump: str | None = None, parent: Any = None,
                       datasets: Sequence[Any] | None = None, description: str = "",
                       params: Mapping[str, Any] | None = None, torchscript: bool = False,
                       init_kwargs: Mapping[str, Any] | None = None,
                       signing_key: str | None = None, env: Mapping[str, Any] | None = None
                       ) -> ModelVersion:
        """Save ``model`` here, upload its files, and have the server register a version.

        Arguments as :meth:`Registry.register_model`; the server numbers the version.
        ``env`` is not sent: inside a run the server records the run's environment.
        """
        version, flavor = check_registration(name, model, flavor, version, bump, signature)
        if signing_key is not None:
            raise _unsupported("signing a version with a local private key",
                               "register without signing_key= (the server's own key, if it "
                               "has one, signs it), or sign in a local store and push")
        parent_ref = None if parent is None else _parent_ref(name, parent)
        ds = normalize_datasets(datasets)
        run = None if run_id is None else self._client.get_run(run_id)  # flushes its records
        store = self.store
        packed = package_model(store.objects, model, flavor, input_example=input_example,
                               signature=signature, torchscript=torchscript,
                               init_kwargs=init_kwargs)
        saved, entries = packed.saved, packed.entries
        hyper = dict(saved.hyperparams)
        hyper.update(fl.stringify(params or {}))
        store.upload_files(entries)
        self._ensure_model(name)
        body = {"files": [{"path": e.path, "size": e.size, "digest": e.digest,
                           "chunks": [list(c) for c in e.chunks]} for e in entries],
                "run_id": None if run is None else run.id, "version": version, "bump": bump,
                "parent": None if parent_ref is None else "/".join(parent_ref),
                "description": description or "", "params": hyper,
                "fingerprint": json.loads(json.dumps(saved.fingerprint, default=str)),
                "datasets": ds}
        return _version(self._call("POST", f"/models/{_q(name)}/versions", json=body))

    def _ensure_model(self, name: str) -> None:
        """As the local registry: the first version creates the registered model."""
        try:
            self.get_registered_model(name)
        except NotFound:
            try:
                self.create_registered_model(name)
            except AlreadyExists:  # someone else created it a moment ago
                pass

    # -- policies, stages, requests --------------------------------------
    def set_stage_policy(self, name: str, stage: str, approvals: int = 0,
                         approvers: Iterable[str] | None = None,
                         exclusive: bool | None = None) -> StagePolicy:
        """Require ``approvals`` approvals (by ``approvers`` if given) to move into ``stage``."""
        st = Stage.parse(stage).value
        if not isinstance(approvals, int) or isinstance(approvals, bool) or approvals < 0:
            raise InvalidArgument(f"approvals must be a non-negative integer, got {approvals!r}")
        if isinstance(approvers, str):
            approvers = [approvers]
        return _policy(self._call("PUT", f"/models/{_q(name)}/policies", json={
            "stage": st, "approvals": approvals,
            "approvers": None if approvers is None else [str(a) for a in approvers],
            "exclusive": exclusive}))

    def get_stage_policies(self, name: str) -> list[StagePolicy]:
        return [_policy(d) for d in self._call("GET", f"/models/{_q(name)}/policies")]

    def transition_stage(self, name: str, version: str, stage: str, comment: str = "") -> ModelVersion:
        """Move a version to ``stage`` directly; refused when the stage's policy needs approvals."""
        version = str(SemVer.parse(version))
        return _version(self._call(
            "POST", f"/models/{_q(name)}/versions/{_q(version)}/stage",
            json={"stage": Stage.parse(stage).value, "comment": comment or ""}))

    def request_transition(self, name: str, version: str, stage: str,
                           comment: str = "") -> TransitionRequest:
        """Ask for ``name/version`` to move to ``stage``; applied at once if no approval is needed."""
        return _request(self._call("POST", f"/models/{_q(name)}/requests", json={
            "version": str(SemVer.parse(version)), "stage": Stage.parse(stage).value,
            "comment": comment or ""}))

    def approve(self, request_id: str, comment: str = "") -> TransitionRequest:
        """Approve a pending request; the transition is applied when the policy is met."""
        return _request(self._call("POST", f"/models/requests/{_q(request_id)}/approve",
                                   json={"comment": comment or ""}))

    def reject(self, request_id: str, comment: str = "") -> TransitionRequest:
        """Reject a pending request (its requester may withdraw it the same way)."""
        return _request(self._call("POST", f"/models/requests/{_q(request_id)}/reject",
                                   json={"comment": comment or ""}))

    def get_transition_request(self, request_id: str) -> TransitionRequest:
        return _request(self._call("GET", f"/models/requests/{_q(request_id)}"))

    def list_transition_requests(self, name: str | None = None,
                                 status: str | None = "pending") -> list[TransitionRequest]:
        if status is not None and status not in ("pending", "applied", "rejected"):
            raise InvalidArgument(f"status must be pending, applied or rejected, got {status!r}")
        names = [name] if name is not None else [m.name for m in self.list_registered_models()]
        out = [_request(d) for n in names
               for d in self._call("GET", f"/models/{_q(n)}/requests",
                                   params={"status": status or ""})]
        return sorted(out, key=lambda r: (r.requested_at, r.id))

    # -- aliases, rollback, history --------------------------------------
    def set_alias(self, name: str, alias: str, version: str) -> ModelVersion:
        check_alias(alias)
        return _version(self._call("PUT", f"/models/{_q(name)}/aliases/{_q(alias)}",
                                   json={"version": str(SemVer.parse(version))}))

    def delete_alias(self, name: str, alias: str) -> None:
        self._call("DELETE", f"/models/{_q(name)}/aliases/{_q(alias)}")

    def rollback(self, name: str, stage: str = "production", to: str | None = None,
                 reason: str = "") -> ModelVersion:
        """Put back the version that was in ``stage`` before the current one (or ``to``)."""
        return _version(self._call("POST", f"/models/{_q(name)}/rollback", json={
            "stage": Stage.parse(stage).value, "to": None if to is None else str(SemVer.parse(to)),
            "reason": reason or ""}))

    def model_history(self, name: str, version: str | None = None) -> list[HistoryEvent]:
        """Registrations, stage and alias changes, requests and decisions: who, when, why."""
        params = {} if version is None else {"version": str(SemVer.parse(version))}
        return [_make(HistoryEvent, d)
                for d in self._call("GET", f"/models/{_q(name)}/history", params=params)]

    def model_version_at(self, name: str, stage: str, when: Any) -> ModelVersion | None:
        """The version that was in ``stage`` (or had alias ``@name``) at ``when``; None if none."""
        if not stage.startswith("@"):
            stage = Stage.parse(stage).value
        d = self._call("GET", f"/models/{_q(name)}/at",
                       params={"stage": stage, "time": to_ms(when)})["version"]
        return None if d is None else _version(d)

    # -- signing keys: administered on the server's store ----------------
    def create_signing_key(self, name: str = "default", directory: Any = None):
        raise _unsupported("creating a signing key", "create and trust keys on the server's "
                           "store (`cairn keys create` there)")

    def trust_key(self, public_pem: str, name: str):
        raise _unsupported("trusting a key", "an administrator trusts keys on the server's store "
                           "(`cairn keys trust FILE` there); to verify a download here, pass "
                           "trusted_keys=[...] to load_model")

    def revoke_key(self, key_id: str) -> None:
        raise _unsupported("revoking a key", "revoke it on the server's store (`cairn keys "
                           "revoke` there)")

    def list_keys(self, include_revoked: bool = False):
        raise _unsupported("listing trusted keys", "list them on the server's store (`cairn keys "
                           "ls` there)")

    def trusted_keys(self) -> dict[str, str]:
        # The server does not publish its trusted keys: signed versions verify against the
        # keys a caller passes (trusted_keys=...), else they load as "untrusted".
        return {}

    # -- audit (server admins) -------------------------------------------
    def audit_log(self, target: str | None = None, action: str | None = None,
                  actor: str | None = None, limit: int | None = None) -> list[AuditEvent]:
        params: dict[str, Any] = {"limit": 10_000 if limit is None else limit}
        for key, value in (("target", target), ("action", action), ("actor", actor)):
            if value is not None:
                params[key] = value
        return [_make(AuditEvent, d) for d in self._call("GET", "/audit", params=params)["events"]]

    def verify_audit_log(self) -> AuditReport:
        d = self._call("GET", "/audit/verify")
        return AuditReport(d["checked"], tuple(AuditProblem(p.get("seq"), p["message"])
                                               for p in d.get("problems") or ()))


# -- JSON -> entities (the server sends dataclasses.asdict of the same ones) ------------
def _make(cls: type, d: Mapping[str, Any], **values: Any) -> Any:
    """``cls`` from the keys of ``d`` it knows (a newer server may send more)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: v for k, v in d.items() if k in names and k not in values}, **values)


def _model(d: Mapping[str, Any]) -> RegisteredModel:
    return _make(RegisteredModel, d, tags=dict(d.get("tags") or {}),
                 aliases=dict(d.get("aliases") or {}),
                 stages={k: tuple(v) for k, v in (d.get("stages") or {}).items()})


def _version(d: Mapping[str, Any]) -> ModelVersion:
    from ..store.wire import pfloat

    raw = d.get("signature_bytes")
    if isinstance(raw, str):  # the server's JSON writes bytes as their repr, b'...'
        try:
            raw = ast.literal_eval(raw)
        except (ValueError, SyntaxError):
            raw = None
        raw = raw if isinstance(raw, bytes) else None
    return _make(ModelVersion, d, bump_reasons=tuple(d.get("bump_reasons") or ()),
                 metrics={k: pfloat(v, f"metric {k}") for k, v in (d.get("metrics") or {}).items()},
                 datasets=tuple(d.get("datasets") or ()), aliases=tuple(d.get("aliases") or ()),
                 requirements=d.get("requirements") or {}, params=d.get("params") or {},
                 lineage=d.get("lineage") or {}, fingerprint=d.get("fingerprint") or {},
                 signature_bytes=raw)


def _policy(d: Mapping[str, Any]) -> StagePolicy:
    people = d.get("approvers")
    return _make(StagePolicy, d, approvers=None if people is None else tuple(people))


def _request(d: Mapping[str, Any]) -> TransitionRequest:
    return _make(TransitionRequest, d,
                 approvals=tuple(_make(Approval, a) for a in d.get("approvals") or ()))
