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

Signing: private keys never leave the client.  With ``signing_key=`` (or the
default key of the keys directory, when the server trusts it) the version is
registered first, since the server assigns its number and created time, then the
client checks the record it got back, signs the canonical payload
(:func:`cairn.registry.signing.payload`) and attaches the signature; the server
stores it only if it verifies against a key it trusts, and only once.

Loading resolves the reference on the server, then checks the record digest, the
signature (against the server's trusted keys plus ``trusted_keys=``) and every
file's digest as it is fetched into the local cache (:mod:`cairn.registry.loading`),
exactly as for a local store.  The naming policy and the trusted keys live on the
server: anyone reads them, server admins change them.
"""

from __future__ import annotations

import ast
import base64
import dataclasses
import hashlib
import json
import re
import urllib.parse
from typing import Any, Iterable, Mapping, Sequence

from ..errors import AlreadyExists, CairnError, InvalidArgument, NotFound, PermissionDenied
from ..services import StoreService
from ..store.validation import text_checked
from . import flavors as fl
from .deployments import check_deployment, check_record
from .entities import (
    Approval, AuditEvent, AuditProblem, AuditReport, HistoryEvent, ModelVersion, RegisteredModel,
    SigningKey, Stage, StagePolicy, TransitionRequest,
)
from .naming import NamingPolicy, check_alias, check_name, is_model_name, make_policy
from .reading import VersionReading
from .semver import SemVer
from .service import (
    _parent_ref, check_registration, normalize_datasets, package_model, parse_ref,
)
from .workflow import to_ms


def _q(segment: str) -> str:
    return urllib.parse.quote(str(segment), safe="")


_REQUEST_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def _name(name: str) -> str:
    """``name`` as a path segment.  A string that is no valid model name (empty, with '/',
    too long...) names no model, so it is :class:`NotFound` here, as in a local store,
    instead of a request that could reach no route (a server decodes ``%2F``)."""
    if not is_model_name(name):
        raise NotFound(f"no registered model named {name!r}; `cairn models ls` lists them",
                       name=name)
    return _q(name)


def _rid(request_id: str) -> str:
    """A transition request id as a path segment; one that no request can have is NotFound."""
    if not isinstance(request_id, str) or not _REQUEST_ID.fullmatch(request_id):
        raise NotFound(f"no transition request {request_id!r}; `cairn models requests NAME` "
                       "lists them", request_id=request_id)
    return _q(request_id)


@text_checked("model", "input_example")  # as the Registry: text is valid Unicode
class RemoteRegistry(StoreService, VersionReading):
    """:class:`~cairn.registry.service.Registry`'s API over a server's REST API: made by
    :func:`cairn.services.registry_for` for a client of a server (``RemoteRegistry(store,
    user)``, or ``RemoteRegistry(client)``)."""

    def __init__(self, store: Any = None, user: str | None = None) -> None:
        StoreService.__init__(self, store, user)

    # -- plumbing --------------------------------------------------------
    @property
    def store(self) -> Any:
        return self._backend

    def _call(self, method: str, path: str, **kw: Any) -> Any:
        return self.store.call(method, path, **kw)

    # -- registered models -----------------------------------------------
    def create_registered_model(self, name: str, description: str = "",
                                tags: Mapping[str, str] | None = None) -> RegisteredModel:
        check_name(name)
        return _model(self._call("POST", "/models", json={
            "name": name, "description": description or "", "tags": dict(tags or {})}))

    def get_registered_model(self, name: str) -> RegisteredModel:
        return _model(self._call("GET", f"/models/{_name(name)}"))

    def list_registered_models(self) -> list[RegisteredModel]:
        return [_model(d) for d in self._call("GET", "/models")]

    def set_naming_policy(self, template: str | None = None, regex: str | None = None
                          ) -> NamingPolicy | None:
        """The server's naming policy for new models (server admins); neither removes it."""
        make_policy(template, regex)  # bad input fails here, before a request
        return _naming(self._call("PUT", "/registry/naming",
                                  json={"template": template, "regex": regex}))

    def get_naming_policy(self) -> NamingPolicy | None:
        return _naming(self._call("GET", "/registry/naming"))

    # -- versions --------------------------------------------------------
    def get_model_version(self, name: str, version: str) -> ModelVersion:
        version = str(SemVer.parse(version))
        return _version(self._call("GET", f"/models/{_name(name)}/versions/{_q(version)}"))

    def list_model_versions(self, name: str, stage: str | None = None) -> list[ModelVersion]:
        """Versions of ``name`` in semver order (oldest first), optionally of one stage."""
        params = {} if stage is None else {"stage": Stage.parse(stage).value}
        return [_version(d) for d in self._call("GET", f"/models/{_name(name)}/versions",
                                                params=params)]

    def latest_model_version(self, name: str) -> ModelVersion:
        latest = self.get_registered_model(name).latest_version
        if latest is None:
            raise NotFound(f"model {name!r} has no versions yet", name=name)
        return self.get_model_version(name, latest)

    def model_versions_of_run(self, run_id: str) -> list[ModelVersion]:
        """The versions registered from run ``run_id`` (of the models the caller may view);
        :class:`NotFound` for an unknown run, as in a local store."""
        if isinstance(run_id, str) and (len(run_id) > 64 or "/" in run_id
                                        or run_id in (".", "..")):  # no run, and no route
            raise NotFound(f"run {run_id!r} does not exist")
        run = self.client.get_run(run_id)  # sends what this process buffered of the run first
        return [_version(d) for d in self._call("GET", f"/runs/{_q(run.id)}/model-versions")]

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
        key = self._signer(signing_key)  # before anything is sent: an unusable key changes nothing
        parent_ref = None if parent is None else _parent_ref(name, parent)
        ds = normalize_datasets(datasets)
        run = None if run_id is None else self.client.get_run(run_id)  # flushes its records
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
                "datasets": ds, "sign": key is None}
        mv = _version(self._call("POST", f"/models/{_name(name)}/versions", json=body))
        if key is None:
            return mv
        return self._sign(mv, key, _tree_oid(entries))

    def _signer(self, explicit: str | None) -> tuple[Any, str] | None:
        """(private key, key id) to sign with here, or None to leave signing to the server.

        An explicit key must be trusted by the server (else nothing is registered); the
        keys directory's default key signs only where the server trusts it, as a local
        store's default key is trusted in that store.
        """
        from . import signing

        path = signing.signing_key_path(explicit)
        if path is None:
            return None
        private, kid = signing.load_private(path)
        if kid in self.trusted_keys():
            return private, kid
        if explicit is None:
            return None
        raise InvalidArgument(f"signing key {kid} ({path}) is not trusted by the server at "
                              f"{self.store.uri}, which would refuse its signature; nothing was "
                              f"registered. A server admin trusts it with `cairn keys trust "
                              f"{path.with_suffix('.pub')} --name NAME`", key_id=kid)

    def _sign(self, mv: ModelVersion, key: tuple[Any, str], tree_oid: str) -> ModelVersion:
        """Sign the version the server registered, after checking it is what was sent."""
        from . import signing
        from .loading import check_record

        check_record(mv)
        if mv.tree_oid != tree_oid:
            raise InvalidArgument(f"the server registered {mv.uri} with files (tree {mv.tree_oid}) "
                                  f"other than the ones uploaded (tree {tree_oid}); it was left "
                                  "unsigned", name=mv.name, version=mv.version)
        private, kid = key
        message = signing.payload(mv.name, mv.version, mv.tree_oid, mv.source_run_id,
                                  mv.created_at, mv.digest)
        try:
            return self.attach_signature(mv.name, mv.version, kid, signing.sign(private, message))
        except CairnError as exc:  # say that the version exists, unsigned
            err = type(exc)(f"{mv.uri} was registered but not signed: {exc.message}",
                            **exc.details)
            err.http_status = exc.http_status
            raise err from None

    def attach_signature(self, name: str, version: str, key_id: str,
                         signature: bytes) -> ModelVersion:
        """Attach an Ed25519 signature of an unsigned version's payload (by a trusted key)."""
        version = str(SemVer.parse(version))
        return _version(self._call(
            "POST", f"/models/{_name(name)}/versions/{_q(version)}/signature",
            json={"key_id": key_id, "signature": base64.b64encode(signature).decode()}))

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
        return _policy(self._call("PUT", f"/models/{_name(name)}/policies", json={
            "stage": st, "approvals": approvals,
            "approvers": None if approvers is None else [str(a) for a in approvers],
            "exclusive": exclusive}))

    def get_stage_policies(self, name: str) -> list[StagePolicy]:
        return [_policy(d) for d in self._call("GET", f"/models/{_name(name)}/policies")]

    def transition_stage(self, name: str, version: str, stage: str, comment: str = "") -> ModelVersion:
        """Move a version to ``stage`` directly; refused when the stage's policy needs approvals."""
        version = str(SemVer.parse(version))
        return _version(self._call(
            "POST", f"/models/{_name(name)}/versions/{_q(version)}/stage",
            json={"stage": Stage.parse(stage).value, "comment": comment or ""}))

    def request_transition(self, name: str, version: str, stage: str,
                           comment: str = "") -> TransitionRequest:
        """Ask for ``name/version`` to move to ``stage``; applied at once if no approval is needed."""
        return _request(self._call("POST", f"/models/{_name(name)}/requests", json={
            "version": str(SemVer.parse(version)), "stage": Stage.parse(stage).value,
            "comment": comment or ""}))

    def approve(self, request_id: str, comment: str = "") -> TransitionRequest:
        """Approve a pending request; the transition is applied when the policy is met."""
        return _request(self._call("POST", f"/models/requests/{_rid(request_id)}/approve",
                                   json={"comment": comment or ""}))

    def reject(self, request_id: str, comment: str = "") -> TransitionRequest:
        """Reject a pending request (its requester may withdraw it the same way)."""
        return _request(self._call("POST", f"/models/requests/{_rid(request_id)}/reject",
                                   json={"comment": comment or ""}))

    def get_transition_request(self, request_id: str) -> TransitionRequest:
        return _request(self._call("GET", f"/models/requests/{_rid(request_id)}"))

    def list_transition_requests(self, name: str | None = None,
                                 status: str | None = "pending") -> list[TransitionRequest]:
        if status is not None and status not in ("pending", "applied", "rejected"):
            raise InvalidArgument(f"status must be pending, applied or rejected, got {status!r}")
        names = [name] if name is not None else [m.name for m in self.list_registered_models()]
        out = [_request(d) for n in names
               for d in self._call("GET", f"/models/{_name(n)}/requests",
                                   params={"status": status or ""})]
        return sorted(out, key=lambda r: (r.requested_at, r.id))

    # -- aliases, rollback, history --------------------------------------
    def set_alias(self, name: str, alias: str, version: str) -> ModelVersion:
        check_alias(alias)
        return _version(self._call("PUT", f"/models/{_name(name)}/aliases/{_q(alias)}",
                                   json={"version": str(SemVer.parse(version))}))

    def delete_alias(self, name: str, alias: str) -> None:
        try:
            check_alias(alias)
        except InvalidArgument:  # no alias has that name (it may not even fit in a URL)
            self.get_registered_model(name)
            raise NotFound(f"model {name!r} has no alias {alias!r}", name=name,
                           alias=alias) from None
        self._call("DELETE", f"/models/{_name(name)}/aliases/{_q(alias)}")

    # -- renaming and deleting (lifecycle.py) ------------------------------
    def deletion_blockers(self, name: str, version: str | None = None) -> dict[str, list[str]]:
        """Version -> why it is protected from deletion (only protected versions)."""
        params = {} if version is None else {"version": str(SemVer.parse(version))}
        return {str(k): list(v) for k, v in self._call(
            "GET", f"/models/{_name(name)}/protected", params=params).items()}

    def delete_model_version(self, name: str, version: str, force: bool = False) -> ModelVersion:
        """Move ``name/version`` to the trash (model admins); a protected one only with
        ``force``."""
        version = str(SemVer.parse(version))
        return _version(self._call("DELETE", f"/models/{_name(name)}/versions/{_q(version)}",
                                   params={"force": "true" if force else "false"}))

    def restore_model_version(self, name: str, version: str) -> ModelVersion:
        """Bring ``name/version`` back from the trash (model admins)."""
        version = str(SemVer.parse(version))
        return _version(self._call("POST",
                                   f"/models/{_name(name)}/versions/{_q(version)}/restore"))

    def delete_registered_model(self, name: str, force: bool = False) -> RegisteredModel:
        """Delete model ``name`` and all its versions (model admins); see the local registry."""
        return _model(self._call("DELETE", f"/models/{_name(name)}",
                                 params={"force": "true" if force else "false"}))

    def rename_registered_model(self, name: str, new_name: str) -> RegisteredModel:
        """Give model ``name`` the name ``new_name`` (model admins); its roles move with it."""
        check_name(new_name)
        return _model(self._call("POST", f"/models/{_name(name)}/rename",
                                 json={"new_name": new_name}))

    def rollback(self, name: str, stage: str = "production", to: str | None = None,
                 reason: str = "") -> ModelVersion:
        """Put back the version that was in ``stage`` before the current one (or ``to``)."""
        return _version(self._call("POST", f"/models/{_name(name)}/rollback", json={
            "stage": Stage.parse(stage).value, "to": None if to is None else str(SemVer.parse(to)),
            "reason": reason or ""}))

    def model_history(self, name: str, version: str | None = None) -> list[HistoryEvent]:
        """Registrations, stage and alias changes, requests, decisions and deployments: who,
        when, why."""
        params = {} if version is None else {"version": str(SemVer.parse(version))}
        return [_make(HistoryEvent, d)
                for d in self._call("GET", f"/models/{_name(name)}/history", params=params)]

    # -- deployment history (deployments.py) -------------------------------
    def record_deployment(self, name: str, version: str, event: str, *, deployment: str,
                          arm: str = "primary", reason: str = "",
                          previous: str | None = None) -> HistoryEvent:
        """Record a start, switch, rollback or stop of ``deployment`` serving ``name/version``
        (editors of the model); the server writes the history and audit events."""
        version, event, deployment, arm, reason, prev = check_record(
            version, event, deployment, arm, reason, previous)
        return _make(HistoryEvent, self._call("POST", f"/models/{_name(name)}/deployments", json={
            "version": version, "event": event, "deployment": deployment, "arm": arm,
            "reason": reason, "previous": prev}))

    def deployments(self, name: str, deployment: str | None = None) -> list[HistoryEvent]:
        """The deployment events of model ``name`` (of one deployment, if given), oldest first."""
        params = {} if deployment is None else {"deployment": check_deployment(deployment)}
        return [_make(HistoryEvent, d)
                for d in self._call("GET", f"/models/{_name(name)}/deployments", params=params)]

    def model_version_at(self, name: str, stage: str, when: Any) -> ModelVersion | None:
        """The version that was in ``stage`` (or had alias ``@name``) at ``when``; None if none."""
        if not stage.startswith("@"):
            stage = Stage.parse(stage).value
        d = self._call("GET", f"/models/{_name(name)}/at",
                       params={"stage": stage, "time": to_ms(when)})["version"]
        return None if d is None else _version(d)

    # -- signing keys: private keys stay here, trusted public keys on the server --
    def create_signing_key(self, name: str = "default", directory: Any = None) -> SigningKey:
        """Write a key pair to the local keys directory and trust its public key on the server.

        Trusting is for server admins: anyone else gets the key pair and a
        :class:`PermissionDenied` saying which file to hand to an admin.
        """
        from pathlib import Path

        from . import signing

        path, pem = signing.create_key_files(name, None if directory is None else Path(directory))
        try:
            return self.trust_key(pem, name)
        except PermissionDenied as exc:
            raise PermissionDenied(
                f"created key {signing.key_id(pem)} ({path}), but only a server admin may trust "
                f"it on {self.store.uri}: {exc.message}. Ask one to run `cairn keys trust "
                f"{path.with_suffix('.pub')} --name {name}`; until then versions are not signed "
                "with it", **exc.details) from None

    def trust_key(self, public_pem: str, name: str) -> SigningKey:
        """Trust a public key on the server (server admins; audited there)."""
        from . import signing

        signing.key_id(public_pem)  # not a key: refused here, with the same message
        signing.check_key_name(name)
        return _make(SigningKey, self._call("POST", "/registry/keys",
                                            json={"name": name, "public_key": public_pem}))

    def revoke_key(self, key_id: str) -> None:
        self._call("POST", f"/registry/keys/{_q(key_id)}/revoke")

    def list_keys(self, include_revoked: bool = False) -> list[SigningKey]:
        flag = "true" if include_revoked else "false"
        return [_make(SigningKey, d) for d in self._call("GET", "/registry/keys",
                                                        params={"include_revoked": flag})]

    def trusted_keys(self) -> dict[str, str]:
        """key id -> PEM of the keys the server trusts: loading verifies against these."""
        return {k.key_id: k.public_key for k in self.list_keys()}

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


def _naming(d: Mapping[str, Any] | None) -> NamingPolicy | None:
    return None if d is None else NamingPolicy(d.get("template"), d.get("regex"))


def _tree_oid(entries: Sequence[Any]) -> str:
    """The oid the server's object store gives the tree of ``entries``."""
    from ..cas.tree import encode_tree

    return hashlib.sha256(encode_tree(entries)).hexdigest()


def _policy(d: Mapping[str, Any]) -> StagePolicy:
    people = d.get("approvers")
    return _make(StagePolicy, d, approvers=None if people is None else tuple(people))


def _request(d: Mapping[str, Any]) -> TransitionRequest:
    return _make(TransitionRequest, d,
                 approvals=tuple(_make(Approval, a) for a in d.get("approvals") or ()))
