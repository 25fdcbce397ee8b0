"""Whether a model version has what a release needs: an approval, a valid signature by a
trusted key, and lineage to the data it was trained on.

One definition of each, for every caller (``cairn check`` gates a candidate with them;
``cairn kpi`` counts the versions in production that have them).  Each ``*_problem``
returns why the version lacks the thing, or None when it has it.
"""

from __future__ import annotations

from typing import Any, Iterable

from ..errors import InvalidSignature
from .entities import Approval, ModelVersion, Stage, TransitionRequest

__all__ = ["approvals", "approval_problem", "data_inputs", "lineage_problem",
           "signature_problem"]


def approvals(requests: Iterable[TransitionRequest], *,
              stages: Iterable[str] = (Stage.PRODUCTION.value,), pending: bool = False
              ) -> dict[str, list[tuple[TransitionRequest, Approval]]]:
    """version -> the ``approve`` decisions on its requests to one of ``stages``.

    A request counts when it was applied, or, with ``pending``, while it still waits for
    more approvals; a rejected request's approvals never count (someone said no).  A
    request applied at once because no approval was needed carries none, so it counts
    for nothing either.
    """
    wanted = {Stage.parse(s).value for s in stages}
    statuses = {"applied", "pending"} if pending else {"applied"}
    out: dict[str, list[tuple[TransitionRequest, Approval]]] = {}
    for req in requests:
        if req.to_stage not in wanted or req.status not in statuses:
            continue
        for a in req.approvals:
            # The registry refuses a requester's approval of their own request; one in
            # the record anyway (written around it) is not an approval by someone else.
            if a.decision == "approve" and a.user != req.requested_by:
                out.setdefault(req.version, []).append((req, a))
    return out


def approval_problem(requests: Iterable[TransitionRequest], version: str, *,
                     stages: Iterable[str] = (Stage.PRODUCTION.value,),
                     pending: bool = False) -> str | None:
    """Why ``version`` has no approval (see :func:`approvals`), or None when it has one."""
    stages = tuple(Stage.parse(s).value for s in stages)
    if approvals(requests, stages=stages, pending=pending).get(version):
        return None
    where = " or ".join(stages)
    return f"no approved request to move it to {where}"


def signature_problem(keys: Any, mv: ModelVersion) -> str | None:
    """Why ``mv`` has no valid signature by a key ``keys`` trusts (``keys`` has
    ``trusted_keys()``: a registry), or None when it has one."""
    from .loading import check_signature, record_ok

    if not record_ok(mv):
        return "its record was changed after registration (digest mismatch)"
    try:
        status = check_signature(keys, mv, None, None)
    except InvalidSignature:
        return "the signature does not verify"
    if status == "unsigned":
        return "not signed"
    if status == "untrusted":
        return f"signed by key {mv.signing_key}, which this registry does not trust"
    return None


def data_inputs(client: Any, mv: ModelVersion, role: str | None = None) -> list[str]:
    """``name@version`` of each data set version ``mv`` was trained on, sorted: its source
    run's inputs in the lineage graph (those logged after registration too) and the data
    sets listed when it was registered; with ``role``, only inputs of that role."""
    from ..services import lineage_for

    node = f"model:{mv.name}@{mv.version}"
    graph = lineage_for(client).graph(node, "upstream", depth=2)
    runs = {e.source for e in graph.edges if e.target == node and e.relation == "produced"}
    found = {graph.nodes[e.source].label for e in graph.edges
             if e.target in runs and e.relation == "input" and (role is None or e.role == role)}
    for d in mv.datasets or ():
        if (role is None or str(d.get("role") or "") == role) and d.get("name") \
                and d.get("version") is not None:
            found.add(f"{d['name']}@{d['version']}")
    return sorted(found)


def lineage_problem(client: Any, mv: ModelVersion, role: str | None = None) -> str | None:
    """Why lineage finds no data set ``mv`` was trained on (of ``role``, when given), or
    None when it finds one or more."""
    if data_inputs(client, mv, role):
        return None
    kind = "data set input" if role is None else f"data set input with role {role!r}"
    if not mv.source_run_id:
        return (f"it was registered without a source run and lists no {kind} (register it "
                "inside a run that calls cairn.log_input, or pass datasets=[...])")
    return (f"its run {mv.source_run_id} logged no {kind} (cairn.log_input(ref"
            + ("" if role is None else f", role={role!r}") + ")) and it lists none")
