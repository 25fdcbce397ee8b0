// One run: overview, params, tags, metric charts (live while RUNNING), artifacts with previews.
import { api } from "../api.js";
import { Chart, chartControls } from "../chart.js";
import { h, clear, fmtTime, fmtDuration, fmtValue, statusBadge, errorBox, colour, num } from "../util.js";
import { commentsPanel } from "../comments.js";
import { askDelete, ROUTES } from "../trash.js";

const POLL_MS = 2000;
const MAX_CHARTS = 24;

function kv(rows) {
  return h("table", { class: "kv" }, h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", {}, v)))));
}

function overview(run) {
  const env = run.env || {};
  const git = env.git || {};
  const end = run.end_time || (run.status === "RUNNING" ? Date.now() : run.heartbeat);
  return kv([
    ["Status", statusBadge(run.status)],
    ["Experiment", h("a", { href: `/?experiments=${run.experiment_id}` }, run.experiment)],
    ["Run id", h("code", {}, run.id)],
    ["Started", fmtTime(run.start_time)],
    ["Duration", fmtDuration(end - run.start_time)],
    ["User", run.user],
    ["Parent", run.parent_id ? h("a", { href: `/runs/${run.parent_id}` }, run.parent_id) : "—"],
    ["Git commit", git.commit ? h("code", {}, `${git.commit.slice(0, 12)}${git.dirty ? " (dirty)" : ""}${git.branch ? ` on ${git.branch}` : ""}`) : "—"],
    ["Python", env.python ? env.python.version : "—"],
    ["Host", env.hostname || "—"],
    ["OS", env.os ? `${env.os.system} ${env.os.release}` : "—"],
    ["Command", env.argv ? h("code", {}, env.argv.join(" ")) : "—"],
    ["Lineage", h("a", { href: `/lineage?node=run:${run.id}` }, "graph")],
  ]);
}

function table(obj, empty) {
  const keys = Object.keys(obj || {}).sort();
  if (!keys.length) return h("p", { class: "muted" }, empty);
  return kv(keys.map((k) => [k, fmtValue(obj[k])]));
}

const TEXT = /\.(txt|log|md|py|yaml|yml|toml|cfg|ini|json|jsonl)$/i;
const TABLE = /\.(csv|tsv)$/i;
const TABLE_ROWS = 200;
const NOTE_TAG = "cairn.note";  // where cairn.Client.set_note keeps a run's notes

/** The first rows of a CSV/TSV file as a table (quoted fields with commas are kept whole). */
function csvTable(text, sep) {
  const rows = [];
  for (const line of text.split(/\r?\n/)) {
    if (!line) continue;
    if (rows.length > TABLE_ROWS) break;
    const cells = [];
    let cur = "";
    let quoted = false;
    for (let i = 0; i < line.length; i++) {
      const ch = line[i];
      if (quoted) {
        if (ch === '"' && line[i + 1] === '"') { cur += '"'; i++; } else if (ch === '"') quoted = false; else cur += ch;
      } else if (ch === '"') quoted = true;
      else if (ch === sep) { cells.push(cur); cur = ""; } else cur += ch;
    }
    cells.push(cur);
    rows.push(cells);
  }
  const [head, ...body] = rows;
  return h("div", { class: "preview-table" }, h("table", { class: "grid" },
    h("thead", {}, h("tr", {}, (head || []).map((c) => h("th", {}, c)))),
    h("tbody", {}, body.slice(0, TABLE_ROWS).map((r) => h("tr", {}, r.map((c) => h("td", {}, c)))))),
  body.length > TABLE_ROWS ? h("p", { class: "muted" }, `first ${TABLE_ROWS} rows`) : null);
}
const IMAGE = { png: "image/png", jpg: "image/jpeg", jpeg: "image/jpeg", gif: "image/gif",
  svg: "image/svg+xml", webp: "image/webp" };

async function preview(runId, file, box) {
  clear(box, h("p", { class: "muted" }, `loading ${file.path}…`));
  const url = `/api/v1/runs/${runId}/artifacts/download?path=${encodeURIComponent(file.path)}`;
  const ext = file.path.split(".").pop().toLowerCase();
  const link = h("a", { href: url, download: file.path.split("/").pop() }, "download");
  const head = h("div", { class: "preview-head" }, h("code", {}, file.path), ` ${file.size} bytes · `, link);
  try {
    if (IMAGE[ext]) {
      const blob = await (await fetch(url)).blob();
      const img = h("img", { class: "preview-img", alt: file.path,
        src: URL.createObjectURL(new Blob([blob], { type: IMAGE[ext] })) });
      clear(box, head, img);
    } else if (TABLE.test(file.path) && file.size <= 2 << 20) {
      const text = await (await fetch(url)).text();
      clear(box, head, csvTable(text, ext === "tsv" ? "\t" : ","));
    } else if (TEXT.test(file.path) && file.size <= 2 << 20) {
      let text = await (await fetch(url)).text();
      if (ext === "json") {
        try { text = JSON.stringify(JSON.parse(text), null, 2); } catch { /* shown as it is */ }
      }
      clear(box, head, h("pre", { class: "preview-text" }, text));
    } else {
      clear(box, head, h("p", { class: "muted" }, "No preview for this file type or size."));
    }
  } catch (err) {
    clear(box, head, errorBox(err));
  }
}

export function runPage(root, [runId]) {
  const chartState = { xMode: "step", smoothing: 0, log: false };
  const charts = new Map();  // key -> {chart, zoom}
  let timer = null;
  let run = null;
  let can = { edit: false, delete: false };  // what this user may change (GET /ui/runs/{id}); all true with auth off
  let disposed = false;
  const head = h("div", { class: "page-head" });
  const lifecycleBox = h("div", { role: "status" });
  const over = h("section", {});
  const paramsBox = h("section", {});
  const tagsBox = h("section", {});
  const notesBox = h("section", { class: "notes" });
  const chartsGrid = h("div", { class: "charts" });
  const chartFilter = h("input", { type: "search", placeholder: "filter metrics", "aria-label": "filter metrics" });
  const artifactsBox = h("section", {});
  const previewBox = h("div", { class: "preview" });
  clear(root, head, lifecycleBox,
    h("div", { class: "cols" },
      h("div", { class: "col" }, h("h2", {}, "Overview"), over),
      h("div", { class: "col" }, h("h2", {}, "Params"), paramsBox, h("h2", {}, "Tags"), tagsBox)),
    h("h2", {}, "Notes"), notesBox,
    h("h2", {}, "Metrics"),
    h("div", { class: "toolbar" }, chartControls(chartState, () => {
      for (const c of charts.values()) c.chart.setOptions(chartState);
    }), chartFilter),
    chartsGrid,
    h("h2", {}, "Artifacts"),
    h("div", { class: "cols" }, h("div", { class: "col" }, artifactsBox), h("div", { class: "col wide" }, previewBox)));

  async function loadSeries(keys) {
    if (!keys.length) return;
    // Charts zoomed in ask for their window alone; the rest share one request.
    const whole = keys.filter((k) => !charts.get(k).zoom);
    const jobs = [];
    if (whole.length) jobs.push([whole, null]);
    for (const k of keys) if (charts.get(k).zoom) jobs.push([[k], charts.get(k).zoom]);
    await Promise.all(jobs.map(async ([ks, zoom]) => {
      const points = charts.get(ks[0]).chart.points();
      // Each chart keeps only its latest answer: a poll must not undo a zoom, nor the reverse.
      const asked = ks.map((k) => [k, charts.get(k).asked = (charts.get(k).asked || 0) + 1]);
      const res = await api(`/ui/runs/${runId}/series`, { query: { key: ks, points, ...(zoom || {}) } });
      if (disposed) return;
      const current = new Map(asked);
      for (const s of res.series) {
        const c = charts.get(s.key);
        if (!c || c.asked !== current.get(s.key)) continue;
        c.chart.zoomed = c.zoom;
        c.chart.setSeries([{ ...s, label: s.key, colour: colour(0),
          values: s.values.map(num), min: s.min && s.min.map(num), max: s.max && s.max.map(num) }]);
      }
    }));
  }

  function buildCharts() {
    const q = chartFilter.value.trim().toLowerCase();
    const keys = Object.keys(run.metric_summaries || {}).sort().filter((k) => k.toLowerCase().includes(q));
    for (const [k, c] of charts) { c.chart.destroy(); charts.delete(k); }
    const shown = keys.slice(0, MAX_CHARTS);
    clear(chartsGrid, shown.map((key) => {
      const box = h("div", { class: "chart", "data-key": key });
      const chart = new Chart(box, { title: key, onZoom: (zoom) => {
        charts.get(key).zoom = zoom;
        loadSeries([key]).catch((err) => box.append(errorBox(err)));
      } });
      chart.opts = { ...chartState };
      charts.set(key, { chart, zoom: null });
      return box;
    }), keys.length > shown.length ? h("p", { class: "muted" }, `${keys.length - shown.length} more metrics: type in the filter to find them`) : null,
    keys.length ? null : h("p", { class: "muted" }, "No metrics logged."));
    return loadSeries(shown);
  }

  // Delete moves the run to the trash; a deleted run's page says so and offers Restore.
  function trashButton() {
    const deleted = run.lifecycle === "deleted";
    const btn = h("button", { type: "button", class: deleted ? "" : "danger", onclick: async () => {
      const item = { id: run.id, name: run.name };
      try {
        if (deleted) await ROUTES.run.restore(item);
        else if (!(await askDelete("run", [item]))) return;
        run = await api(`/runs/${runId}`);
        renderRun();
        if (!deleted) lifecycleBox.prepend(h("div", { class: "ok" }, "Deleted: the run is in the ", h("a", { href: "/trash" }, "Trash"), "."));
      } catch (err) {
        clear(lifecycleBox, errorBox(err));
      }
    } }, deleted ? "Restore run" : "Delete run");
    if (!can.delete) {
      btn.disabled = true;
      btn.title = `needs the editor role on experiment ${run.experiment}`;
    }
    return btn;
  }

  function renderRun() {
    clear(head, h("h1", {}, run.name, " ", statusBadge(run.status)),
      h("div", { class: "muted" }, h("a", { href: `/?experiments=${run.experiment_id}` }, run.experiment), ` · ${run.id}`),
      h("div", { class: "head-actions" }, trashButton()));
    clear(lifecycleBox, run.lifecycle === "deleted"
      ? h("div", { class: "notice trash-notice" }, "This run is in the trash: it is hidden from the runs table and searches until it is restored.")
      : null);
    clear(over, overview(run));
    clear(paramsBox, table(run.params, "No params."));
    const tags = { ...run.tags };
    delete tags[NOTE_TAG];
    clear(tagsBox, table(tags, "No tags."));
    if (!notesBox.querySelector("textarea")) renderNotes();  // never under the user's typing
  }

  function renderNotes() {
    const text = run.tags[NOTE_TAG] || "";
    const edit = h("button", { onclick: () => {
      const area = h("textarea", { rows: 6, cols: 80, "aria-label": "notes" });
      area.value = text;
      const status = h("span", { role: "status" });
      const save = h("button", { class: "primary", onclick: async () => {
        try {
          await api(`/runs/${runId}/tags/${NOTE_TAG}`, { method: "PUT", text: area.value });
          run.tags[NOTE_TAG] = area.value;
          clear(notesBox);
          renderNotes();
        } catch (err) {
          clear(status, errorBox(err));
        }
      } }, "Save");
      const cancel = h("button", { onclick: () => { clear(notesBox); renderNotes(); } }, "Cancel");
      clear(notesBox, area, h("div", { class: "toolbar" }, save, cancel, status));
      area.focus();
    } }, text ? "Edit notes" : "Add notes");
    // Notes are a tag: saving them needs the editor role (the server would answer 403).
    if (!can.edit) {
      edit.disabled = true;
      edit.title = `needs the editor role on experiment ${run.experiment}`;
    }
    clear(notesBox, text ? h("div", { class: "note-text" }, text) : h("p", { class: "muted" }, "No notes."), edit);
  }

  async function loadArtifacts() {
    const { files } = await api(`/runs/${runId}/artifacts`);
    if (!files.length) { clear(artifactsBox, h("p", { class: "muted" }, "No artifacts.")); return; }
    clear(artifactsBox, h("ul", { class: "files" }, files.map((f) => h("li", {},
      h("a", { href: "#", class: "file", onclick: (e) => { e.preventDefault(); preview(runId, f, previewBox); } }, f.path),
      h("span", { class: "muted" }, ` ${f.size} B`)))));
  }

  async function poll() {
    try {
      const fresh = await api(`/runs/${runId}`);
      if (disposed) return;
      const newKeys = Object.keys(fresh.metric_summaries).some((k) => !(k in run.metric_summaries));
      run = fresh;
      renderRun();
      if (newKeys) await buildCharts();
      else await loadSeries([...charts.keys()]);
    } catch { /* a missed poll is retried on the next tick */ }
    if (!disposed && run.status === "RUNNING") timer = setTimeout(poll, POLL_MS);
  }

  chartFilter.addEventListener("input", () => buildCharts());

  (async () => {
    let err = null;
    try {
      // The UI's form of GET /runs/{id}: no such run is an answer, not a failed request
      // (which the browser would log as a console error).
      const res = await api(`/ui/runs/${encodeURIComponent(runId)}`);
      run = res.run;
      if (!run) err = res.message;
      else can = res.can || can;
    } catch (e) {
      err = e;
    }
    if (err) {
      clear(root, h("h1", {}, "Run not found"), errorBox(err), h("a", { href: "/" }, "All runs"));
      return;
    }
    renderRun();
    root.append(commentsPanel("run", run.id));
    await Promise.all([buildCharts(), loadArtifacts()]).catch((err) => chartsGrid.append(errorBox(err)));
    if (run.status === "RUNNING") timer = setTimeout(poll, POLL_MS);
  })();

  return () => {
    disposed = true;
    clearTimeout(timer);
    for (const c of charts.values()) c.chart.destroy();
  };
}
