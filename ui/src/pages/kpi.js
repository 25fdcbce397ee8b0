// Governance KPIs (`cairn kpi`): deployment success, rollbacks and how fast they came, and
// whether the versions in production went through the gates (approval, signature, lineage).
// One request: GET /ui/kpi, over the models the caller may view; the form's fields are the
// page's query string, so a window can be linked to.
import { api } from "../api.js";
import { h, clear, fmtTime, fmtDuration, fmtValue, errorBox } from "../util.js";

const FIELDS = ["model", "since", "until", "settle"];
const SETTLE = /^\s*\d+\s*[smhdw]\s*$/i;  // what the server's parse_settle reads as text
// An ISO 8601 date or time, as Python's fromisoformat reads it (the server says why if not)
const TIME = /^\s*\d{4}-?\d{2}-?\d{2}([T ][0-9:.,]+)?\s*(Z|[+-][0-9:]+)?\s*$/i;

const pct = (x) => (x === null || x === undefined ? "—" : `${+(x * 100).toFixed(1)}%`);
const dur = (s) => (s === null || s === undefined ? "—" : fmtDuration(s * 1000));
const rate = (x) => (x === null || x === undefined ? "—" : fmtValue(+x.toFixed(3)));
const when = (iso) => (iso ? fmtTime(Date.parse(iso)) : "");

// [heading, the value from a Summary, its class]: the table's columns after the model's name
const COLUMNS = [
  ["deployments", (s) => s.deployments],
  ["succeeded", (s) => s.succeeded],
  ["failed", (s) => s.failed],
  ["pending", (s) => s.pending],
  ["success rate", (s) => pct(s.success_rate)],
  ["change failure rate", (s) => pct(s.change_failure_rate)],
  ["rollbacks", (s) => s.rollbacks],
  ["rollbacks / week", (s) => rate(s.rollbacks_per_week)],
  ["mean time to rollback", (s) => dur(s.mean_time_to_rollback_s)],
  ["in production", (s) => s.production_versions],
  ["approved", (s) => pct(s.approval_rate)],
  ["signed", (s) => pct(s.signature_rate)],
  ["lineage", (s) => pct(s.lineage_rate)],
  ["compliant", (s) => pct(s.compliance_rate)],
  ["reproducible", (s) => (s.reproducibility_rate === null ? "not yet" : pct(s.reproducibility_rate))],
];

function card(key, label, value, sub) {
  return h("div", { class: "kpi-card", "data-kpi": key },
    h("div", { class: "kpi-value" }, value), h("div", { class: "kpi-label" }, label),
    sub ? h("div", { class: "kpi-sub muted" }, sub) : null);
}

function cards(o, note) {
  const settled = o.succeeded + o.failed;
  return h("div", { class: "kpi-cards" },
    card("success_rate", "deployment success rate", pct(o.success_rate),
      `${o.succeeded} of ${settled} settled deployments${o.pending ? `, ${o.pending} pending` : ""}`),
    card("change_failure_rate", "change failure rate", pct(o.change_failure_rate), `${o.failed} rolled back within the settle period`),
    card("rollbacks", "rollbacks", String(o.rollbacks), `${rate(o.rollbacks_per_week)} a week`),
    card("mean_time_to_rollback", "mean time to rollback", dur(o.mean_time_to_rollback_s), "from release to rollback"),
    card("compliance_rate", "audit compliance", pct(o.compliance_rate),
      `${o.compliant} of ${o.production_versions} versions in production`),
    card("reproducibility_rate", "reproducibility", o.reproducibility_rate === null ? "not yet" : pct(o.reproducibility_rate), note));
}

function summaryTable(data) {
  const names = Object.keys(data.models).sort();
  const row = (label, s, cls, link) => h("tr", { class: cls, "data-model": label },
    h("th", { scope: "row" }, link ? h("a", { href: `/models/${encodeURIComponent(label)}` }, label) : label),
    COLUMNS.map(([, f]) => h("td", { class: "num" }, String(f(s)))));
  return h("div", { class: "table-scroll" }, h("table", { class: "grid kpi" },
    h("thead", {}, h("tr", {}, h("th", {}, "model"), COLUMNS.map(([t]) => h("th", {}, t)))),
    h("tbody", {},
      names.map((n) => row(n, data.models[n], "", true)),
      names.length > 1 ? row("all", data.overall, "kpi-all", false) : null)));
}

function compliance(rows) {
  if (!rows.length) return h("p", { class: "muted" }, "No version is in production (stage Production or @champion).");
  const bad = rows.filter((c) => !c.ok);
  const good = rows.length - bad.length;
  return h("div", {},
    h("p", {}, `${good} of ${rows.length} versions in production have an approval, a valid signature and lineage to their training data.`),
    bad.length ? h("ul", { class: "noncompliant" }, bad.map((c) => h("li", { "data-model": c.model, "data-version": c.version },
      h("a", { href: `/models/${encodeURIComponent(c.model)}` }, `${c.model} ${c.version}`), " ",
      h("span", { class: "muted" }, `(${c.held_by.join(", ")})`),
      h("ul", { class: "lacks" }, c.lacks.map((x) => h("li", {}, x)))))) : null);
}

function rollbackTable(rows) {
  if (!rows.length) return h("p", { class: "muted" }, "No rollback in this window.");
  return h("table", { class: "grid kpi-rollbacks" },
    h("thead", {}, h("tr", {}, ["when", "model", "rolled back", "to", "after", "where"].map((t) => h("th", {}, t)))),
    h("tbody", {}, [...rows].reverse().map((r) => h("tr", { "data-model": r.model, "data-version": r.version },
      h("td", {}, when(r.time)),
      h("td", {}, h("a", { href: `/models/${encodeURIComponent(r.model)}` }, r.model)),
      h("td", {}, r.version), h("td", {}, r.to || "—"), h("td", {}, dur(r.after_s)), h("td", {}, r.track)))));
}

function releaseList(rows) {
  const box = h("details", { class: "kpi-releases" }, h("summary", {}, `Releases (${rows.length})`));
  box.append(h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, ["started", "model", "version", "went live on", "outcome", "ended"].map((t) => h("th", {}, t)))),
    h("tbody", {}, [...rows].reverse().map((r) => h("tr", { class: `outcome-${r.outcome}` },
      h("td", {}, when(r.started)), h("td", {}, r.model), h("td", {}, r.version), h("td", {}, r.track),
      h("td", {}, h("span", { class: `badge outcome-${r.outcome}` }, r.outcome)), h("td", {}, r.ended ? when(r.ended) : "live"))))));
  return box;
}

export function kpiPage(root, _args, params, navigate) {
  const given = Object.fromEntries(FIELDS.map((f) => [f, params.get(f) || ""]));
  const inputs = {
    since: h("input", { name: "since", value: given.since, placeholder: "2025-01-01", size: 18, "aria-label": "since" }),
    until: h("input", { name: "until", value: given.until, placeholder: "now", size: 18, "aria-label": "until" }),
    settle: h("input", { name: "settle", value: given.settle || "24h", size: 6, "aria-label": "settle period" }),
  };
  const modelSelect = h("select", { name: "model", "aria-label": "model" }, h("option", { value: "" }, "all models"));
  if (given.model) modelSelect.append(h("option", { value: given.model, selected: true }, given.model));
  const formNote = h("span", { class: "muted", role: "status" });
  const form = h("form", { class: "toolbar kpi-form", onsubmit: (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    const settle = inputs.settle.value.trim();
    if (settle && !SETTLE.test(settle)) {
      clear(formNote, errorBox(`settle period ${JSON.stringify(settle)}: give a whole number and a unit, e.g. 30m, 24h or 7d`));
      return;
    }
    // Caught here, a typo is a message, not a 400 that the browser logs as an error.
    for (const f of ["since", "until"]) {
      const v = inputs[f].value.trim();
      if (v && !TIME.test(v)) {
        clear(formNote, errorBox(`${f} ${JSON.stringify(v)}: give an ISO 8601 time, e.g. 2025-01-31 or 2025-01-31T14:00`));
        return;
      }
    }
    if (modelSelect.value) q.set("model", modelSelect.value);
    for (const f of ["since", "until"]) if (inputs[f].value.trim()) q.set(f, inputs[f].value.trim());
    if (settle && settle !== "24h") q.set("settle", settle);
    const s = q.toString();
    navigate(s ? `/kpi?${s}` : "/kpi");
  } },
  h("label", {}, "model ", modelSelect),
  h("label", {}, "since ", inputs.since), h("label", {}, "until ", inputs.until),
  h("label", { title: "a release not rolled back within this long counts as a success" }, "settle ", inputs.settle),
  h("button", { class: "primary", type: "submit" }, "Apply"), formNote);
  const body = h("div", { class: "kpi-body" }, h("p", { class: "muted" }, "Loading…"));
  clear(root, h("div", { class: "crumbs" }, h("a", { href: "/models" }, "Models"), " / KPIs"),
    h("h1", {}, "Governance KPIs"), form,
    h("p", { class: "muted small" }, "Times are ISO 8601, in UTC unless they say otherwise; ",
      h("code", {}, "cairn kpi --json"), " gives the same numbers, and docs/kpi.md defines each."),
    body);

  let live = true;
  (async () => {
    try {
      const query = {};
      for (const f of FIELDS) if (given[f]) query[f] = given[f];
      const [data, models] = await Promise.all([api("/ui/kpi", { query }), api("/models")]);
      if (!live) return;
      for (const m of models) {
        if (m.name !== given.model) modelSelect.append(h("option", { value: m.name }, m.name));
      }
      const names = Object.keys(data.models);
      if (!names.length) {
        clear(body, h("p", { class: "muted empty" }, "No registered model to measure yet (or none you may view)."));
        return;
      }
      clear(body,
        h("p", { class: "kpi-window muted" },
          `Releases and rollbacks from ${data.since ? when(data.since) : "the first release"} to ${when(data.until)}; `
          + `a release settles after ${dur(data.settle_s)}. Compliance is of the versions in production now.`),
        cards(data.overall, data.reproducibility_note),
        h("h2", {}, "By model"), summaryTable(data),
        h("h2", {}, "Audit compliance"), compliance(data.compliance),
        h("h2", {}, "Rollbacks"), rollbackTable(data.rollbacks),
        releaseList(data.releases),
        data.notes.length ? h("ul", { class: "kpi-notes muted small" }, data.notes.map((n) => h("li", {}, n))) : null);
    } catch (err) {
      if (live) clear(body, errorBox(err));
    }
  })();
  return () => { live = false; };
}
