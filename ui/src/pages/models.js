// The model registry: models, versions (semver, bump reasons, stages, aliases),
// stage-history timeline, approval requests, rollback with a reason.
import { api, session } from "../api.js";
import { commentsPanel } from "../comments.js";
import { h, clear, fmtTime, stageBadge, errorBox, shortId } from "../util.js";
import { askDelete } from "../trash.js";

const STAGES = ["Development", "Staging", "Production", "Archived"];

export function modelsPage(root) {
  const box = h("div", {});
  clear(root, h("div", { class: "page-head" }, h("h1", {}, "Models"),
    h("a", { href: "/kpi", class: "kpi-link" }, "Governance KPIs")), box);
  (async () => {
    try {
      const models = await api("/models");
      if (!models.length) {
        clear(box, h("p", { class: "muted" }, "No registered models yet. Register one with cairn.register_model(...) or `cairn models register`."));
        return;
      }
      clear(box, h("table", { class: "grid models" },
        h("thead", {}, h("tr", {}, ["model", "latest", "stages", "aliases", "updated", "description"].map((t) => h("th", {}, t)))),
        h("tbody", {}, models.map((m) => h("tr", {},
          h("td", {}, h("a", { href: `/models/${encodeURIComponent(m.name)}` }, m.name)),
          h("td", {}, m.latest_version || "—"),
          h("td", {}, Object.entries(m.stages || {}).filter(([, v]) => v.length).map(([s, v]) => h("span", { class: "stage-chip" }, stageBadge(s), " ", v.join(", ")))),
          h("td", {}, Object.entries(m.aliases || {}).map(([a, v]) => h("span", { class: "alias" }, `@${a} → ${v}`))),
          h("td", {}, fmtTime(m.updated_at)),
          h("td", {}, m.description))))));
    } catch (err) {
      clear(box, errorBox(err));
    }
  })();
  return null;
}

function versionDetails(v) {
  const kvs = (obj) => Object.entries(obj || {}).map(([k, x]) => h("div", {}, h("code", {}, k), " ", String(x)));
  return h("div", { class: "details-grid" },
    h("div", {}, h("h4", {}, "Record"),
      h("div", {}, "digest ", h("code", {}, v.digest.slice(0, 16) + "…")),
      h("div", {}, v.signing_key ? `signed by key ${v.signing_key}` : "not signed"),
      v.parent ? h("div", {}, `parent ${v.parent}`) : null,
      v.description ? h("p", {}, v.description) : null),
    h("div", {}, h("h4", {}, "Metrics at registration"), kvs(v.metrics)),
    h("div", {}, h("h4", {}, "Params"), kvs(v.params)),
    h("div", {}, h("h4", {}, "Data sets"), (v.datasets || []).map((d) => h("div", {},
      h("a", { href: `/datasets/${encodeURIComponent(d.name)}?version=${d.version}` }, `${d.name}@${d.version}`),
      d.role ? ` (${d.role})` : ""))),
    v.signature ? h("div", {}, h("h4", {}, "Signature"), h("pre", { class: "preview-text" }, JSON.stringify(v.signature, null, 2))) : null,
    h("div", { class: "version-comments" }, commentsPanel("model_version", `${v.name}@${v.version}`)));
}

// A request withdrawn by its requester is a "reject" decision by the requester (the registry
// has no separate kind): the request's own event, with the same request id, says who asked.
function timeline(events) {
  const askedBy = new Map(events.filter((e) => e.kind === "request" && e.request_id).map((e) => [e.request_id, e.actor]));
  const text = (e) => {
    switch (e.kind) {
      case "register": return `registered ${e.version}`;
      case "stage": return `${e.version}: ${e.from_value || "—"} → ${e.to_value}`;
      case "rollback": return `rollback: ${e.version} back in ${e.to_value || "its stage"}`;
      case "alias": return `@${e.alias} → ${e.version}`;
      case "alias_deleted": return `@${e.alias} removed`;
      case "request": return `${e.version}: requested → ${e.to_value}`;
      case "approve": return `${e.version}: request approved`;
      case "reject": return `${e.version}: request ${askedBy.get(e.request_id) === e.actor ? "withdrawn" : "rejected"}`;
      default: return `${e.kind}${e.version ? " " + e.version : ""}`;
    }
  };
  return h("ol", { class: "timeline" }, [...events].reverse().map((e) => h("li", { class: `ev-${e.kind}` },
    h("span", { class: "when" }, fmtTime(e.time)), " ", h("b", {}, text(e)), " ",
    h("span", { class: "muted" }, `by ${e.actor}`), e.reason ? h("div", { class: "reason" }, `“${e.reason}”`) : null)));
}

/**
 * Turn a control off when the caller lacks what the server would ask for, saying why in its
 * title (the server would refuse the request with 403, which the browser logs as an error).
 */
function allow(el, ok, why) {
  el.disabled = !ok;
  if (ok) el.removeAttribute("title"); else el.title = why;
  return el;
}

export function modelPage(root, [name]) {
  const enc = encodeURIComponent(name);
  const needs = (role) => `needs the ${role} role on model ${name}`;
  const head = h("div", {});
  const versionsBox = h("div", {});
  const requestsBox = h("div", {});
  const rollbackBox = h("div", {});
  const historyBox = h("div", {});
  const atBox = h("div", {});
  const message = h("div", { role: "status" });
  clear(root, head, message,
    h("h2", {}, "Versions"), versionsBox,
    h("h2", {}, "Approval requests"), requestsBox,
    h("h2", {}, "Rollback"), rollbackBox,
    h("h2", {}, "Stage history"), atBox, historyBox);

  function say(err, ok) {
    clear(message, err ? errorBox(err) : h("div", { class: "ok" }, ok));
  }

  async function act(fn, ok) {
    try {
      await fn();
      say(null, ok);
    } catch (err) {
      say(err);
    }
    await load();  // after a refusal too: the page shows what the server now has
  }

  const approvalsText = (pol) => `${pol.approvals} approval${pol.approvals === 1 ? "" : "s"}`
    + (pol.approvers ? ` by ${pol.approvers.join(", ")}` : "");

  // A stage whose policy needs approvals is reached by a request, never by a direct move
  // (the server would refuse it with 403): the row offers *Request* with a comment box there,
  // says why, and offers nothing when a request for that move is already waiting.
  function versionRow(v, state) {
    const { can } = state;
    const target = h("select", { "aria-label": `stage for ${v.version}` }, STAGES.filter((s) => s !== v.stage).map((s) => h("option", { value: s }, s)));
    const url = `/models/${enc}/versions/${encodeURIComponent(v.version)}/stage`;
    const move = h("button", { onclick: () => {
      const stage = target.value;
      act(async () => {
        // The policy may have changed since the page was drawn: ask again before moving.
        const pols = await api(`/models/${enc}/policies`);
        const pol = pols.find((p) => p.stage === stage);
        if (pol && pol.approvals > 0) {
          throw new Error(`${stage} now needs ${approvalsText(pol)}: request the move instead.`);
        }
        await api(url, { method: "POST", body: { stage } });
      }, `${v.version} moved to ${stage}`);
    } }, "Move");
    const comment = h("input", { placeholder: "comment for the approvers", "aria-label": `request comment for ${v.version}`, size: 24 });
    const ask = h("button", { class: "primary", onclick: () => {
      const stage = target.value;
      act(() => api(`/models/${enc}/requests`, { method: "POST", body: { version: v.version, stage, comment: comment.value } }),
        `requested: ${v.version} → ${stage}, waiting for approval`);
    } }, "Request");
    const note = h("div", { class: "policy-note muted" });
    const show = (el, on) => { el.style.display = on ? "" : "none"; };
    // Moving and requesting need the editor role: without it they stay in view, switched off.
    for (const el of [target, move, comment, ask]) allow(el, can.edit, needs("editor"));
    const update = () => {
      const stage = target.value;
      const pol = state.policies[stage];
      const gated = !!pol && pol.approvals > 0;
      const waiting = state.requests.find((r) => r.version === v.version && r.to_stage === stage);
      show(move, !gated);
      show(comment, gated && !waiting);
      show(ask, gated && !waiting);
      if (waiting) clear(note, `${stage} needs ${approvalsText(pol)}; the request by ${waiting.requested_by} is waiting (below).`);
      else if (gated) clear(note, `${stage} needs ${approvalsText(pol)} by policy: request the move; it happens once approved.`);
      else clear(note);
    };
    target.addEventListener("change", update);
    update();
    // Delete: the server's protection rules (GET .../protected) are asked first, so that a
    // protected version shows why in the dialog instead of meeting a 409; the force that
    // overrides them is offered to those who may delete at all (model admins), confirmed twice.
    const del = h("button", { type: "button", class: "danger", "aria-label": `delete version ${v.version}`, onclick: async () => {
      const label = `${name} ${v.version}`;
      try {
        const blockers = await api(`/models/${enc}/protected`, { query: { version: v.version } });
        const done = await askDelete("model_version", [{ model: name, version: v.version, name: label }],
          { what: `version ${label}`, protectedBy: blockers[v.version] || null, canForce: can.delete });
        if (!done) return;
        say(null, h("span", {}, `${label} deleted: it is in the `, h("a", { href: "/trash" }, "Trash"), "."));
      } catch (err) {
        say(err);
      }
      await load();
    } }, "Delete");
    allow(del, can.delete, needs("admin"));
    const toggle = h("a", { href: "#", class: "version-link", onclick: (e) => {
      e.preventDefault();
      const row = e.target.closest("tr");
      const next = row.nextElementSibling;
      if (next && next.classList.contains("version-details")) { next.remove(); return; }
      row.after(h("tr", { class: "version-details" }, h("td", { colspan: 8 }, versionDetails(v))));
    } }, v.version);
    return h("tr", { "data-version": v.version },
      h("td", {}, h("b", {}, toggle)),
      h("td", {}, stageBadge(v.stage)),
      h("td", {}, v.aliases.map((a) => h("span", { class: "alias" }, `@${a}`))),
      h("td", {}, h("span", { class: "bump" }, v.bump), v.bump_reasons.length ? h("ul", { class: "reasons" }, v.bump_reasons.map((r) => h("li", {}, r))) : null),
      h("td", {}, v.source_run_id ? h("a", { href: `/runs/${v.source_run_id}` }, shortId(v.source_run_id)) : "—"),
      h("td", {}, v.flavor),
      h("td", {}, fmtTime(v.created_at), h("div", { class: "muted" }, v.created_by)),
      h("td", { class: "actions" }, target, move, comment, ask,
        h("a", { href: `/lineage?node=${encodeURIComponent(`model:${name}@${v.version}`)}` }, "lineage"), del, note));
  }

  // The server never lets a requester approve their own request, and a policy may name its
  // approvers: the row offers only what this user may do (the requester may withdraw).
  // Deciding needs the approver role on the model; withdrawing one's own request (POST
  // .../reject by its requester) needs only the editor role that made it.
  function requestRow(r, state) {
    const own = state.user !== null && r.requested_by === state.user;
    const ok = own ? (el) => allow(el, state.can.edit, needs("editor"))
      : (el) => allow(el, state.can.approve, needs("approver"));
    const comment = h("input", { placeholder: "comment", "aria-label": `comment on ${r.id}` });
    const pol = state.policies[r.to_stage];
    const named = !pol || !pol.approvers || state.user === null || pol.approvers.includes(state.user);
    const decide = (how, ok) => act(() => api(`/models/requests/${r.id}/${how}`, { method: "POST", body: { comment: comment.value } }), ok);
    const actions = own
      ? [ok(h("button", { class: "danger", onclick: () => decide("reject", `withdrawn: ${r.version} → ${r.to_stage}`) }, "Withdraw")),
        h("span", { class: "muted" }, " yours: another approver decides")]
      : named
        ? [ok(h("button", { class: "primary", onclick: () => decide("approve", `approved: ${r.version} → ${r.to_stage}`) }, "Approve")),
          ok(h("button", { class: "danger", onclick: () => decide("reject", `rejected: ${r.version} → ${r.to_stage}`) }, "Reject"))]
        : [h("span", { class: "muted" }, `approvers: ${pol.approvers.join(", ")}`)];
    ok(comment);
    return h("tr", { "data-request": r.id },
      h("td", {}, r.version), h("td", {}, `${r.from_stage} → ${r.to_stage}`), h("td", {}, r.requested_by),
      h("td", {}, fmtTime(r.requested_at)), h("td", {}, `${r.approvals.length}/${r.required || 1}`),
      h("td", {}, r.comment),
      h("td", { class: "actions" }, own || named ? comment : null, actions));
  }

  // A rollback needs the editor role, a version to put back (the form offers only those the
  // registry named, so it never sends one the registry refuses) and, where the stage's policy
  // names approvers, one of them.
  function rollbackForm(state) {
    const stage = h("select", { "aria-label": "rollback stage" }, Object.keys(state.rollback).map((s) => h("option", { value: s }, s)));
    const to = h("select", { "aria-label": "rollback to" });
    const reason = h("input", { placeholder: "reason (required)", "aria-label": "rollback reason", size: 40 });
    const btn = h("button", { class: "danger", onclick: () => {
      if (!reason.value.trim()) { say(new Error("Give a reason for the rollback.")); return; }
      act(() => api(`/models/${enc}/rollback`, { method: "POST", body: { stage: stage.value, to: to.value || null, reason: reason.value } }), `rolled back ${stage.value}`);
    } }, "Roll back");
    for (const el of [stage, to, reason]) allow(el, state.can.edit, needs("editor"));
    const update = () => {
      const pol = state.policies[stage.value];
      const named = !pol || !pol.approvers || state.user === null || pol.approvers.includes(state.user);
      const targets = state.rollback[stage.value] || [];
      clear(to, targets.length
        ? [h("option", { value: "" }, `the previous version (${targets[0]})`), ...targets.map((v) => h("option", { value: v }, v))]
        : h("option", { value: "" }, "no earlier version"));
      if (!state.can.edit) allow(btn, false, needs("editor"));
      else if (!targets.length) allow(btn, false, `nothing to roll back to: no earlier version was in ${stage.value}`);
      else allow(btn, named, named ? "" : `only the approvers of ${stage.value} (${(pol.approvers || []).join(", ")}) may roll it back`);
    };
    stage.addEventListener("change", update);
    update();
    return h("div", { class: "toolbar" }, "Put back in ", stage, " ", to, reason, btn);
  }

  // Why some actions are switched off: one line, only when some are.
  function rolesNote({ can, user }) {
    const off = [];
    if (!can.edit) off.push("moving versions, requesting transitions and rolling back need the editor role");
    if (!can.approve) off.push("deciding on requests needs the approver role");
    if (!can.delete) off.push("deleting versions needs the admin role");
    if (!off.length) return null;
    return h("p", { class: "roles-note muted" }, `${user ? `Signed in as ${user}: ` : ""}${off.join("; ")}.`);
  }

  // "What was in production at time T": the registry answers from its stage history.
  function atForm() {
    const stage = h("select", { "aria-label": "stage at" }, STAGES.map((s) => h("option", { value: s }, s)));
    stage.value = "Production";
    const when = h("input", { type: "datetime-local", step: 1, "aria-label": "time" });
    const d = new Date(Date.now() - new Date().getTimezoneOffset() * 60000);
    when.value = d.toISOString().slice(0, 19);
    const out = h("span", { class: "at-result", role: "status" });
    const ask = h("button", { onclick: async () => {
      const t = new Date(when.value).getTime();
      if (!Number.isFinite(t)) { clear(out, errorBox("Choose a date and time.")); return; }
      try {
        const res = await api(`/models/${enc}/at`, { query: { stage: stage.value, time: Math.max(0, t) } });
        clear(out, res.version ? h("b", {}, res.version.version) : "no version", ` was in ${stage.value} at ${fmtTime(t)}`);
      } catch (err) {
        clear(out, errorBox(err));
      }
    } }, "Look up");
    return h("div", { class: "toolbar" }, "Which version was in ", stage, " at ", when, ask, out);
  }

  async function load() {
    try {
      // A mistyped name is an answer (200, model null), not a 404 the browser logs.
      // `can` says what this user may do here (their roles on the model; all true with auth off).
      const { model, message: missing, can, rollback } = await api(`/ui/models/${enc}`);
      if (!model) {
        clear(root, h("h1", {}, "Model not found"), errorBox(missing), h("a", { href: "/models" }, "All models"));
        return;
      }
      const [versions, requests, history, policies, me] = await Promise.all([
        api(`/models/${enc}/versions`), api(`/models/${enc}/requests`), api(`/models/${enc}/history`),
        api(`/models/${enc}/policies`), session().catch(() => ({ user: null }))]);
      const state = { policies: Object.fromEntries(policies.map((p) => [p.stage, p])), requests, user: me.user, can, rollback };
      clear(head, h("h1", {}, model.name), model.description ? h("p", {}, model.description) : null,
        h("p", { class: "model-tabs" }, h("a", { href: `/models/${enc}/monitoring` }, "Monitoring"),
          h("span", { class: "muted" }, ": drift, live quality, alerts and the arms serving it")),
        h("div", { class: "muted" }, `created by ${model.created_by} on ${fmtTime(model.created_at)}`),
        rolesNote(state));
      const sorted = [...versions].reverse();
      clear(versionsBox, h("table", { class: "grid versions" },
        h("thead", {}, h("tr", {}, ["version", "stage", "aliases", "bump", "run", "flavor", "created", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, sorted.map((v) => versionRow(v, state)))));
      clear(requestsBox, requests.length ? h("table", { class: "grid requests" },
        h("thead", {}, h("tr", {}, ["version", "transition", "asked by", "when", "approvals", "comment", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, requests.map((r) => requestRow(r, state)))) : h("p", { class: "muted" }, "No pending requests."));
      clear(rollbackBox, rollbackForm(state));
      clear(historyBox, timeline(history));
      if (!atBox.childElementCount) clear(atBox, atForm());
    } catch (err) {
      clear(head, h("h1", {}, name), errorBox(err));
    }
  }
  load();
  return null;
}
