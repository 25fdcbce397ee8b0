// Reports: Markdown documents with live panels (a run's metric chart, runs side by side, a
// model's stage history), stored on the server (GET/PUT /reports).  The page draws the
// report from data fetched now (GET /reports/{name}/data), edits its Markdown, and
// downloads it as one self-contained HTML file (GET /reports/{name}/export).
import { api, ApiError } from "../api.js";
import { renderReport } from "../report.js";
import { h, clear, fmtTime, errorBox } from "../util.js";

const STARTER = (name) => `# ${name}

What we found, with live panels: a fenced block of type \`cairn-panel\` holding JSON.

\`\`\`cairn-panel
{"type": "stages", "model": "MODEL"}
\`\`\`
`;

export function reportsPage(root, _args, _params, navigate) {
  const list = h("div", {});
  const name = h("input", { type: "text", placeholder: "report name", "aria-label": "report name", size: 20 });
  const status = h("span", { role: "status" });
  const create = h("button", { class: "primary", onclick: async () => {
    const n = name.value.trim();
    if (!n) { clear(status, "Name it first."); return; }
    try {
      await api(`/reports/${encodeURIComponent(n)}`, { method: "PUT", body: { body: `# ${n}\n` } });
      navigate(`/reports/${encodeURIComponent(n)}?edit=1`);
    } catch (err) {
      clear(status, errorBox(err));
    }
  } }, "New report");
  clear(root, h("h1", {}, "Reports"), list, h("div", { class: "toolbar" }, name, create, status));
  api("/reports").then(({ reports }) => {
    clear(list, reports.length ? h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ["name", "author", "panels", "updated"].map((t) => h("th", {}, t)))),
      h("tbody", {}, reports.map((r) => h("tr", {},
        h("td", {}, h("a", { href: r.url }, r.name)), h("td", {}, r.author),
        h("td", { class: "num" }, r.panels.length), h("td", {}, `${fmtTime(r.updated_at)} by ${r.updated_by}`)))))
      : h("p", { class: "muted" }, "No reports yet."));
  }).catch((err) => clear(list, errorBox(err)));
}

/** GET an export with the stored token, and hand it to the browser as a download. */
async function download(enc, name) {
  const headers = {};
  const token = localStorage.getItem("cairn.token");
  if (token) headers.authorization = `Bearer ${token}`;
  const r = await fetch(`/api/v1/reports/${enc}/export`, { headers });
  if (!r.ok) throw new ApiError(r.status, await r.json().catch(() => null));
  const url = URL.createObjectURL(await r.blob());
  const a = h("a", { href: url, download: `${name}.html` });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function reportPage(root, [name], params) {
  const enc = encodeURIComponent(name);
  const tools = h("div", { class: "toolbar report-tools" });
  const editBox = h("div", {});
  const view = h("div", {});
  const status = h("span", { role: "status" });
  let meta = null;
  let dispose = null;
  let disposed = false;
  clear(root, tools, editBox, view);

  async function draw() {
    const snap = await api(`/reports/${enc}/data`);
    if (disposed) return;
    if (dispose) dispose();
    clear(view);
    dispose = renderReport(view, snap);
  }

  function edit() {
    const text = h("textarea", { "aria-label": "report markdown", rows: 18, cols: 100, class: "report-editor" });
    text.value = meta.body.trim() === `# ${name}` ? STARTER(name) : meta.body;
    const note = h("div", { role: "status" });
    const save = h("button", { class: "primary", onclick: async () => {
      save.disabled = true;
      try {
        // Checked first, so that a bad panel is an answer to show, not a refused request.
        const check = await api("/reports/check", { method: "POST", body: { body: text.value } });
        if (!check.ok) { clear(note, errorBox(check)); return; }
        meta = { ...await api(`/reports/${enc}`, { method: "PUT", body: { body: text.value } }), can: meta.can };
        clear(editBox);
        await draw();
      } catch (err) {
        clear(note, errorBox(err));  // a bad panel: the server names it, and stored nothing
      } finally {
        save.disabled = false;
      }
    } }, "Save");
    const cancel = h("button", { onclick: () => clear(editBox) }, "Cancel");
    clear(editBox, h("p", { class: "muted" }, "Markdown; a panel is a fenced block ```cairn-panel holding JSON: ",
      h("code", {}, '{"type": "metric", "run": RUN_ID, "key": "loss"}'), ", ",
      h("code", {}, '{"type": "compare", "runs": [...], "columns": ["metrics.loss", "params.lr"], "key": "loss"}'), ", ",
      h("code", {}, '{"type": "stages", "model": NAME}'), "."), text, h("div", { class: "toolbar" }, save, cancel), note);
    text.focus();
  }

  api(`/reports/${enc}`).then(async (r) => {
    meta = r;
    clear(tools,
      h("button", { onclick: () => download(enc, name).catch((err) => clear(status, errorBox(err))) }, "Download HTML"),
      meta.can && meta.can.edit ? h("button", { onclick: edit }, "Edit") : null,
      meta.can && meta.can.edit ? null : h("span", { class: "muted" }, `Only ${meta.author} or an admin may change this report.`),
      status);
    await draw();
    if (params && params.get("edit") && meta.can && meta.can.edit) edit();
  }).catch((err) => clear(root, h("h1", {}, "Report not found"), errorBox(err), h("a", { href: "/reports" }, "All reports")));
  return () => {
    disposed = true;
    if (dispose) dispose();
  };
}
