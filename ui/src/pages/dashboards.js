// Dashboards: named panels over saved queries, stored on the server (GET/PUT /dashboards).
// A panel's query is a saved view of one experiment (its filter and sort) or its own
// filter; kinds: line (metric histories of the runs, zoomed exactly), scatter, parallel
// coordinates, table, significance (the runs grouped across seeds, with Welch's t and
// Mann-Whitney U between groups, as on the compare page).  Editing adds and removes panels
// and saves the whole dashboard.
import { api, searchAll } from "../api.js";
import { Chart } from "../chart.js";
import { scatter, parallelCoordinates } from "../plots.js";
import { MAX_GROUPS, groupCount, significanceTables } from "../significance.js";
import { h, clear, fmtTime, fmtValue, errorBox, colour, num, quoteKey } from "../util.js";

const KINDS = ["line", "scatter", "parallel", "table", "significance"];
const ATTRS = { name: "attributes.run_name", status: "attributes.status", start: "attributes.start_time",
  user: "attributes.user" };

function orderBy(sort) {
  if (!sort) return [];
  const [kind, ...rest] = sort.id.split(".");
  return [`${ATTRS[sort.id] || `${kind}.${quoteKey(rest.join("."))}`} ${sort.dir}`];
}

export function dashboardsPage(root, _args, _params, navigate) {
  const list = h("div", {});
  const name = h("input", { type: "text", placeholder: "dashboard name", "aria-label": "dashboard name", size: 20 });
  const status = h("span", { role: "status" });
  const create = h("button", { class: "primary", onclick: async () => {
    const n = name.value.trim();
    if (!n) { clear(status, "Name it first."); return; }
    try {
      await api(`/dashboards/${encodeURIComponent(n)}`, { method: "PUT", body: { panels: [] } });
      navigate(`/dashboards/${encodeURIComponent(n)}`);
    } catch (err) {
      clear(status, errorBox(err));
    }
  } }, "New dashboard");
  clear(root, h("h1", {}, "Dashboards"), list, h("div", { class: "toolbar" }, name, create, status));
  api("/dashboards").then(({ dashboards }) => {
    clear(list, dashboards.length ? h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ["name", "panels", "description", "updated"].map((t) => h("th", {}, t)))),
      h("tbody", {}, dashboards.map((d) => h("tr", {},
        h("td", {}, h("a", { href: d.url }, d.name)), h("td", { class: "num" }, d.panels.length),
        h("td", {}, d.description), h("td", {}, `${fmtTime(d.updated_at)} by ${d.updated_by}`)))))
      : h("p", { class: "muted" }, "No dashboards yet."));
  }).catch((err) => clear(list, errorBox(err)));
}

export function dashboardPage(root, [name]) {
  const enc = encodeURIComponent(name);
  const grid = h("div", { class: "dashboard" });
  const editBox = h("div", {});
  const head = h("div", {});
  const charts = [];
  let dash = null;
  let disposed = false;
  clear(root, head, grid, editBox);

  async function save(panels) {
    const can = dash.can;
    dash = { ...await api(`/dashboards/${enc}`, { method: "PUT", body: { description: dash.description, panels } }), can };
    render();
  }

  async function query(p) {
    let { filter, sort } = p;
    if (p.view) {
      const v = await api(`/experiments/${encodeURIComponent(p.experiment_id)}/views/${encodeURIComponent(p.view)}`);
      filter = v.state.filter;
      sort = v.state.sort;
    }
    const res = await api("/ui/runs", { method: "POST", body: { experiment_ids: [p.experiment_id], filter,
      order_by: orderBy(sort), columns: p.kind === "line" || p.kind === "significance" ? [] : p.columns,
      limit: p.limit } });
    return res.rows;
  }

  async function linePanel(box, p, rows) {
    for (const [ci, col] of p.columns.entries()) {
      const key = col.slice("metrics.".length);
      const holder = h("div", { class: "chart", "data-key": key });
      box.append(holder);
      const load = async (zoom) => {
        const series = await Promise.all(rows.map(async (r, i) => {
          const res = await api(`/ui/runs/${r.id}/series`, { query: { key, points: chart.points(), ...(zoom || {}) } });
          return res.series.map((s) => ({ ...s, label: r.name, colour: colour(i + ci),
            values: s.values.map(num), min: s.min && s.min.map(num), max: s.max && s.max.map(num) }));
        }));
        if (disposed) return;
        chart.zoomed = zoom;
        chart.setSeries(series.flat());
      };
      const chart = new Chart(holder, { title: key, onZoom: (zoom) => load(zoom).catch((err) => holder.append(errorBox(err))) });
      charts.push(chart);
      await load(null);
    }
  }

  async function significancePanel(box, p, rows) {
    const quoted = rows.map((r) => `'${r.id.replace(/'/g, "''")}'`).join(", ");
    const runs = await searchAll(`attributes.run_id IN (${quoted})`, [p.experiment_id]);
    if (disposed) return;
    const across = p.across || ["seed"];
    const n = groupCount(runs, across);
    if (n > MAX_GROUPS) {
      box.append(h("p", { class: "notice too-many-groups" },
        `These ${runs.length} runs make ${n} groups; a comparison across ${across.join(", ")} takes at most ${MAX_GROUPS}.`));
      return;
    }
    const metric = p.columns[0].slice("metrics.".length);
    const res = await api("/ui/compare/aggregate", { method: "POST", body: {
      run_ids: runs.map((r) => r.id), metric, across, summary: "last" } });
    if (!disposed) box.append(...significanceTables(res));
  }

  async function drawPanel(box, p) {
    const rows = await query(p);
    if (disposed) return;
    if (!rows.length) { box.append(h("p", { class: "muted" }, "No runs match.")); return; }
    if (p.kind === "line") await linePanel(box, p, rows);
    else if (p.kind === "significance") await significancePanel(box, p, rows);
    else if (p.kind === "scatter") {
      const runs = rows.map((r) => ({ ...r, name: r.name }));
      box.append(scatter(runs, (r) => r.cells[0], (r) => r.cells[1], { xLabel: p.columns[0], yLabel: p.columns[1] }));
    } else if (p.kind === "parallel") {
      box.append(parallelCoordinates(rows, p.columns.map((c, i) => ({ label: c, value: (r) => r.cells[i] })), { width: 500 }));
    } else {
      box.append(h("table", { class: "grid" },
        h("thead", {}, h("tr", {}, h("th", {}, "run"), p.columns.map((c) => h("th", {}, c)))),
        h("tbody", {}, rows.map((r) => h("tr", {}, h("td", {}, h("a", { href: `/runs/${r.id}` }, r.name)),
          r.cells.map((v) => h("td", { class: "num" }, fmtValue(v))))))));
    }
  }

  function render() {
    for (const c of charts.splice(0)) c.destroy();
    clear(head, h("h1", {}, dash.name), dash.description ? h("p", {}, dash.description) : null,
      h("p", { class: "muted" }, `updated ${fmtTime(dash.updated_at)} by ${dash.updated_by}`));
    clear(grid, dash.panels.length ? null : h("p", { class: "muted" }, "No panels yet: add one below."));
    dash.panels.forEach((p, i) => {
      const body = h("div", { class: "panel-body" });
      const what = p.view ? `view ${p.view}` : (p.filter || "all runs");
      grid.append(h("section", { class: `panel panel-${p.kind}`, "data-panel": i },
        h("div", { class: "panel-head" }, h("strong", {}, p.title || `${p.kind}: ${p.columns.join(", ")}`),
          h("span", { class: "muted" }, ` · ${what}`),
          dash.can && dash.can.edit ? h("button", { class: "link danger", onclick: () => save(dash.panels.filter((_, j) => j !== i)).catch((err) => body.append(errorBox(err))) }, "Remove") : null),
        body));
      drawPanel(body, p).catch((err) => body.append(errorBox(err)));
    });
    renderEditor();
  }

  async function renderEditor() {
    if (!(dash.can && dash.can.edit)) {  // only its creator (or an admin) who edits every experiment it draws
      clear(editBox, h("p", { class: "muted" }, `Only ${dash.created_by} or an admin may change this dashboard.`));
      return;
    }
    const kind = h("select", { "aria-label": "panel kind" }, KINDS.map((k) => h("option", { value: k }, k)));
    const exp = h("select", { "aria-label": "panel experiment" });
    const columns = h("input", { type: "text", size: 30, "aria-label": "panel columns", placeholder: "metrics.loss, params.lr" });
    const view = h("input", { type: "text", size: 12, "aria-label": "panel view", placeholder: "saved view (optional)" });
    const filter = h("input", { type: "text", size: 24, "aria-label": "panel filter", placeholder: "filter (without a view)" });
    const title = h("input", { type: "text", size: 16, "aria-label": "panel title", placeholder: "title" });
    const across = h("input", { type: "text", size: 12, "aria-label": "panel across", placeholder: "across: seed" });
    const status = h("span", { role: "status" });
    const add = h("button", { class: "primary", onclick: async () => {
      const panel = { kind: kind.value, experiment_id: exp.value, title: title.value.trim(),
        columns: columns.value.split(",").map((c) => c.trim()).filter(Boolean), filter: filter.value.trim() };
      if (view.value.trim()) panel.view = view.value.trim();
      if (kind.value === "significance") {
        const keys = across.value.split(",").map((a) => a.trim()).filter(Boolean);
        if (keys.length) panel.across = keys;
      }
      try {
        await save([...dash.panels, panel]);
      } catch (err) {
        clear(status, errorBox(err));
      }
    } }, "Add panel");
    clear(editBox, h("h2", {}, "Add a panel"), h("div", { class: "toolbar" }, kind, exp, columns, view, filter, title, across, add), status);
    try {
      const { experiments } = await api("/experiments");
      exp.append(...experiments.map((e) => h("option", { value: e.id }, e.name)));
    } catch (err) {
      clear(status, errorBox(err));
    }
  }

  api(`/dashboards/${enc}`).then((d) => { dash = d; render(); })
    .catch((err) => clear(root, h("h1", {}, "Dashboard not found"), errorBox(err), h("a", { href: "/dashboards" }, "All dashboards")));
  return () => {
    disposed = true;
    for (const c of charts) c.destroy();
  };
}
