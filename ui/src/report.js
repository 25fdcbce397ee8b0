// A report: its Markdown with live panels, drawn from a snapshot (GET /reports/{name}/data,
// or the JSON an exported file embeds).  The same code draws both: the web UI's report page
// and the self-contained HTML export (report-export.js).  A panel is matched to its
// ```cairn-panel block by the block's text (`source`), so a block the server did not read
// as a panel shows as code, never as someone else's data.
import { Chart } from "./chart.js";
import { markdown } from "./markdown.js";
import { h, fmtTime, fmtValue, num, colour, stageBadge, statusBadge } from "./util.js";

function metricPanel(body, data, later, charts) {
  const s = data.series;
  const holder = h("div", { class: "chart", "data-key": data.key, "data-count": s.count });
  body.append(holder);
  later.push(() => {
    const chart = new Chart(holder, { title: `${data.key} · ${data.run.name}` });
    charts.push(chart);
    chart.setSeries([{ ...s, label: data.run.name, colour: colour(0), values: s.values.map(num),
      min: s.min && s.min.map(num), max: s.max && s.max.map(num) }]);
  });
}

function comparePanel(body, data, links, later, charts) {
  if (data.series) {  // with a key: the runs' histories of that metric, one line each
    const holder = h("div", { class: "chart", "data-key": data.key });
    body.append(holder);
    later.push(() => {
      const chart = new Chart(holder, { title: data.key });
      charts.push(chart);
      chart.setSeries(data.series.map((s, i) => ({ ...s, label: s.name, colour: colour(i),
        values: s.values.map(num), min: s.min && s.min.map(num), max: s.max && s.max.map(num) })));
    });
  }
  body.append(h("table", { class: "grid compare-table" },
    h("thead", {}, h("tr", {}, h("th", {}, "run"), h("th", {}, "status"), data.columns.map((c) => h("th", {}, c)))),
    h("tbody", {}, data.runs.map((r) => h("tr", { "data-run": r.id },
      h("td", {}, links ? h("a", { href: `/runs/${encodeURIComponent(r.id)}` }, r.name) : r.name),
      h("td", {}, statusBadge(r.status)),
      r.cells.map((v) => h("td", { class: "num" }, fmtValue(typeof v === "string" && /^(NaN|-?Infinity)$/.test(v) ? num(v) : v))))))));
}

function change(e) {
  if (e.kind === "register") return ["registered"];
  if (e.kind === "rollback") return ["rollback → ", e.to ? stageBadge(e.to) : "its stage"];
  return [e.from ? stageBadge(e.from) : "—", " → ", e.to ? stageBadge(e.to) : "—"];
}

function stagesPanel(body, data, links) {
  if (!data.events.length) { body.append(h("p", { class: "muted" }, "No stage changes yet.")); return; }
  body.append(h("table", { class: "grid stage-history" },
    h("thead", {}, h("tr", {}, ["when", "version", "change", "by", "reason"].map((t) => h("th", {}, t)))),
    h("tbody", {}, data.events.map((e) => h("tr", { class: `ev-${e.kind}` },
      h("td", {}, fmtTime(e.time)),
      h("td", {}, links ? h("a", { href: `/models/${encodeURIComponent(data.model)}` }, e.version || "") : e.version || ""),
      h("td", {}, change(e)), h("td", {}, e.actor), h("td", {}, e.reason || ""))))));
}

function panelTitle(spec) {
  if (spec.title) return spec.title;
  if (spec.type === "metric") return `${spec.key} of run ${String(spec.run).slice(0, 8)}`;
  if (spec.type === "compare") return `${spec.runs.length} runs compared`;
  return `Stage history of ${spec.model}`;
}

function panelNode(p, later, charts, links) {
  const body = h("div", { class: "panel-body" });
  const box = h("section", { class: `panel report-panel panel-${p.spec.type}`, "data-panel-type": p.spec.type },
    h("div", { class: "panel-head" }, h("strong", {}, panelTitle(p.spec))), body);
  if (p.error !== undefined) body.append(h("div", { class: "error", role: "alert" }, p.error));
  else if (p.spec.type === "metric") metricPanel(body, p.data, later, charts);
  else if (p.spec.type === "compare") comparePanel(body, p.data, links, later, charts);
  else if (p.spec.type === "stages") stagesPanel(body, p.data, links);
  return box;
}

/**
 * Draw `snap` into `el`: a heading (the name, author and when the data was drawn), then the
 * Markdown with its panels.  `links`: link runs and models to the UI's pages (off in an
 * export, which has no server).  Returns a function that frees the charts.
 */
export function renderReport(el, snap, { links = true } = {}) {
  const charts = [];
  const later = [];
  const unused = [...snap.panels];
  const panel = (source) => {
    const i = unused.findIndex((p) => p.source === source);
    return i < 0 ? null : panelNode(unused.splice(i, 1)[0], later, charts, links);
  };
  el.append(h("div", { class: "report-head" }, h("h1", {}, snap.name),
      h("p", { class: "muted" }, `by ${snap.author} · updated ${fmtTime(snap.updated_at)} by ${snap.updated_by}`,
        ` · data drawn ${fmtTime(snap.generated_at)}`)),
    h("article", { class: "report" }, markdown(snap.body, { panel })));
  for (const draw of later) draw();  // once in the page, so that charts know their width
  return () => { for (const c of charts) c.destroy(); };
}
