// The model registry: models, versions (semver, bump reasons, stages, aliases),
// stage-history timeline, approval requests, rollback with a reason.
import { api } from "../api.js";
import { h, clear, fmtTime, stageBadge, errorBox, shortId } from "../util.js";

const STAGES = ["Development", "Staging", "Production", "Archived"];

export function modelsPage(root) {
  const box = h("div", {});
  clear(root, h("h1", {}, "Models"), box);
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

function timeline(events) {
  const text = (e) => {
    switch (e.kind) {
      case "register": return `registered ${e.version}`;
      case "stage": return `${e.version}: ${e.from_value || "—"} → ${e.to_value}`;
      case "rollback": return `rollback: ${e.version} back in ${e.to_value || "its stage"}`;
      case "alias": return `@${e.alias} → ${e.version}`;
      case "alias_deleted": return `@${e.alias} removed`;
      case "request": return `${e.version}: requested → ${e.to_value}`;
      case "approve": return `${e.version}: request approved`;
      case "reject": return `${e.version}: request rejected`;
      default: return `${e.kind}${e.version ? " " + e.version : ""}`;
    }
  };
  return h("ol", { class: "timeline" }, [...events].reverse().map((e) => h("li", { class: `ev-${e.kind}` },
    h("span", { class: "when" }, fmtTime(e.time)), " ", h("b", {}, text(e)), " ",
    h("span", { class: "muted" }, `by ${e.actor}`), e.reason ? h("div", { class: "reason" }, `“${e.reason}”`) : null)));
}

export function modelPage(root, [name]) {
  const enc = encodeURIComponent(name);
  const head = h("div", {});
  const versionsBox = h("div", {});
  const requestsBox = h("div", {});
  const rollbackBox = h("div", {});
  const historyBox = h("div", {});
  const message = h("div", { role: "status" });
  clear(root, head, message,
    h("h2", {}, "Versions"), versionsBox,
    h("h2", {}, "Approval requests"), requestsBox,
    h("h2", {}, "Rollback"), rollbackBox,
    h("h2", {}, "Stage history"), historyBox);

  function say(err, ok) {
    clear(message, err ? errorBox(err) : h("div", { class: "ok" }, ok));
  }

  async function act(fn, ok) {
    try {
      await fn();
      say(null, ok);
      await load();
    } catch (err) {
      say(err);
    }
  }

  function versionRow(v) {
    const target = h("select", { "aria-label": `stage for ${v.version}` }, STAGES.filter((s) => s !== v.stage).map((s) => h("option", { value: s }, s)));
    const move = h("button", { onclick: () => act(() => api(`/models/${enc}/versions/${encodeURIComponent(v.version)}/stage`, { method: "POST", body: { stage: target.value } }), `${v.version} moved to ${target.value}`) }, "Move");
    const ask = h("button", { onclick: () => act(() => api(`/models/${enc}/requests`, { method: "POST", body: { version: v.version, stage: target.value } }), `asked to move ${v.version} to ${target.value}`) }, "Request");
    return h("tr", { "data-version": v.version },
      h("td", {}, h("b", {}, v.version)),
      h("td", {}, stageBadge(v.stage)),
      h("td", {}, v.aliases.map((a) => h("span", { class: "alias" }, `@${a}`))),
      h("td", {}, h("span", { class: "bump" }, v.bump), v.bump_reasons.length ? h("ul", { class: "reasons" }, v.bump_reasons.map((r) => h("li", {}, r))) : null),
      h("td", {}, v.source_run_id ? h("a", { href: `/runs/${v.source_run_id}` }, shortId(v.source_run_id)) : "—"),
      h("td", {}, v.flavor),
      h("td", {}, fmtTime(v.created_at), h("div", { class: "muted" }, v.created_by)),
      h("td", { class: "actions" }, target, move, ask,
        h("a", { href: `/lineage?node=${encodeURIComponent(`model:${name}@${v.version}`)}` }, "lineage")));
  }

  function requestRow(r) {
    const comment = h("input", { placeholder: "comment", "aria-label": `comment on ${r.id}` });
    return h("tr", { "data-request": r.id },
      h("td", {}, r.version), h("td", {}, `${r.from_stage} → ${r.to_stage}`), h("td", {}, r.requested_by),
      h("td", {}, fmtTime(r.requested_at)), h("td", {}, `${r.approvals.length}/${r.required || 1}`),
      h("td", {}, r.comment),
      h("td", { class: "actions" }, comment,
        h("button", { class: "primary", onclick: () => act(() => api(`/models/requests/${r.id}/approve`, { method: "POST", body: { comment: comment.value } }), `approved: ${r.version} → ${r.to_stage}`) }, "Approve"),
        h("button", { class: "danger", onclick: () => act(() => api(`/models/requests/${r.id}/reject`, { method: "POST", body: { comment: comment.value } }), `rejected: ${r.version} → ${r.to_stage}`) }, "Reject")));
  }

  function rollbackForm(versions) {
    const stage = h("select", { "aria-label": "rollback stage" }, ["Production", "Staging"].map((s) => h("option", { value: s }, s)));
    const to = h("select", { "aria-label": "rollback to" }, h("option", { value: "" }, "the previous version"), versions.map((v) => h("option", { value: v.version }, v.version)));
    const reason = h("input", { placeholder: "reason (required)", "aria-label": "rollback reason", size: 40 });
    const btn = h("button", { class: "danger", onclick: () => {
      if (!reason.value.trim()) { say(new Error("Give a reason for the rollback.")); return; }
      act(() => api(`/models/${enc}/rollback`, { method: "POST", body: { stage: stage.value, to: to.value || null, reason: reason.value } }), `rolled back ${stage.value}`);
    } }, "Roll back");
    return h("div", { class: "toolbar" }, "Put back in ", stage, " ", to, reason, btn);
  }

  async function load() {
    try {
      const [model, versions, requests, history] = await Promise.all([
        api(`/models/${enc}`), api(`/models/${enc}/versions`), api(`/models/${enc}/requests`), api(`/models/${enc}/history`)]);
      clear(head, h("h1", {}, model.name), model.description ? h("p", {}, model.description) : null,
        h("div", { class: "muted" }, `created by ${model.created_by} on ${fmtTime(model.created_at)}`));
      const sorted = [...versions].reverse();
      clear(versionsBox, h("table", { class: "grid versions" },
        h("thead", {}, h("tr", {}, ["version", "stage", "aliases", "bump", "run", "flavor", "created", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, sorted.map(versionRow))));
      clear(requestsBox, requests.length ? h("table", { class: "grid requests" },
        h("thead", {}, h("tr", {}, ["version", "transition", "asked by", "when", "approvals", "comment", ""].map((t) => h("th", {}, t)))),
        h("tbody", {}, requests.map(requestRow))) : h("p", { class: "muted" }, "No pending requests."));
      clear(rollbackBox, rollbackForm(sorted));
      clear(historyBox, timeline(history));
    } catch (err) {
      clear(head, h("h1", {}, name), errorBox(err));
    }
  }
  load();
  return null;
}
