// Compare runs: overlaid charts, params diff, and aggregation across seeds with tests.
import { api, searchAll } from "../api.js";
import { Chart, chartControls } from "../chart.js";
import { parallelCoordinates, scatter } from "../plots.js";
import { MAX_GROUPS, groupCount, significanceTables } from "../significance.js";
import { h, clear, fmtValue, errorBox, colour, num, statusBadge } from "../util.js";


function paramsDiff(runs, onlyDiff) {
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort();
  const rows = keys.map((k) => {
    const vals = runs.map((r) => r.params[k]);
    const differs = new Set(vals.map((v) => (v === undefined ? "\u0000" : v))).size > 1;
    return { k, vals, differs };
  }).filter((r) => !onlyDiff || r.differs);
  return h("table", { class: "grid diff" },
    h("thead", {}, h("tr", {}, h("th", {}, "param"), runs.map((r, i) => h("th", {}, h("i", { class: "swatch", style: { background: colour(i) } }), r.name)))),
    h("tbody", {}, rows.map((r) => h("tr", { class: r.differs ? "differs" : "" }, h("th", {}, r.k),
      r.vals.map((v) => h("td", {}, v === undefined ? h("span", { class: "muted" }, "—") : v))))));
}

export function comparePage(root, _args, params) {
  const ids = (params.get("runs") || "").split(",").filter(Boolean);
  const chartState = { xMode: "step", smoothing: 0, log: false };
  let runs = [];
  let chart = null;
  let aggChart = null;
  let disposed = false;
  let zoom = null;
  const metricSel = h("select", { "aria-label": "metric" });
  const chartBox = h("div", { class: "chart big" });
  const diffBox = h("div", {});
  const onlyDiff = h("input", { type: "checkbox", checked: true });
  const aggMetric = h("select", { "aria-label": "aggregate metric" });
  const across = h("input", { value: params.get("across") || "seed", "aria-label": "across", size: 16 });
  const summary = h("select", { "aria-label": "summary" }, ["last", "min", "max"].map((s) => h("option", { value: s }, s)));
  const aggBtn = h("button", { class: "primary" }, "Aggregate");
  const aggBox = h("div", {});
  const aggChartBox = h("div", { class: "chart big" });
  const pcMetric = h("select", { "aria-label": "parallel metric" });
  const scatterParam = h("select", { "aria-label": "scatter param" });
  const pcBox = h("div", { class: "pc-box" });
  const scatterBox = h("div", {});

  if (ids.length < 1) {
    clear(root, h("h1", {}, "Compare"), h("p", {}, "Select runs in the ", h("a", { href: "/" }, "runs table"), " and press Compare."));
    return null;
  }
  const head = h("div", {});
  clear(root, h("h1", {}, `Compare ${ids.length} runs`), head,
    h("h2", {}, "Metrics"),
    h("div", { class: "toolbar" }, metricSel, chartControls(chartState, () => chart && chart.setOptions(chartState))),
    chartBox,
    h("h2", {}, "Params ", h("label", { class: "small" }, onlyDiff, " only differences")), diffBox,
    h("h2", {}, "Params and metrics"),
    h("div", { class: "toolbar" }, h("label", {}, "metric ", pcMetric), h("label", {}, "scatter x ", scatterParam)),
    h("div", { class: "cols" }, h("div", { class: "col wide" }, pcBox), h("div", { class: "col" }, scatterBox)),
    h("h2", {}, "Across seeds"),
    h("p", { class: "muted" }, "Runs are grouped by every param except those listed; each group shows its mean with a 95% confidence band, and every two groups are tested on one value per run."),
    h("div", { class: "toolbar" }, h("label", {}, "metric ", aggMetric), h("label", {}, "group by all params except ", across),
      h("label", {}, "value per run ", summary), aggBtn),
    aggChartBox, aggBox);

  let drawing = 0;
  async function drawChart() {
    const key = metricSel.value;
    if (!key) return;
    const mine = ++drawing;  // a slower answer for an earlier metric or zoom is dropped
    if (!chart) chart = new Chart(chartBox, { title: "", height: 300, onZoom: (z) => { zoom = z; drawChart(); } });
    const points = chart.points();
    const res = await Promise.all(runs.map((r) => (r.metric_summaries[key]
      ? api(`/ui/runs/${r.id}/series`, { query: { key, points, ...(zoom || {}) } }) : null)));
    if (disposed || mine !== drawing) return;
    const series = [];
    res.forEach((x, i) => {
      if (!x) return;
      const s = x.series[0];
      series.push({ ...s, label: runs[i].name, colour: colour(i), values: s.values.map(num),
        min: s.min && s.min.map(num), max: s.max && s.max.map(num) });
    });
    chart.title = key;
    chart.zoomed = zoom;
    chart.opts = { ...chartState };
    chart.setSeries(series);
    chartBox.dataset.metric = key;
  }

  async function aggregate() {
    const acrossKeys = across.value.split(",").map((s) => s.trim()).filter(Boolean);
    const n = groupCount(runs, acrossKeys);
    if (n > MAX_GROUPS) {
      if (aggChart) { aggChart.destroy(); aggChart = null; }
      clear(aggChartBox);
      clear(aggBox, h("p", { class: "notice too-many-groups" },
        `These ${runs.length} runs make ${n} groups; the comparison across seeds takes at most ${MAX_GROUPS}. `,
        "Add the params that vary from run to run within a group (seeds, say) to “group by all params except”."));
      return;
    }
    clear(aggBox, h("p", { class: "muted" }, "computing…"));
    let res;
    try {
      res = await api("/ui/compare/aggregate", { method: "POST", body: {
        run_ids: runs.map((r) => r.id), metric: aggMetric.value, summary: summary.value,
        across: acrossKeys } });
    } catch (err) {
      clear(aggBox, errorBox(err));
      return;
    }
    if (disposed) return;
    if (!aggChart) aggChart = new Chart(aggChartBox, { title: "", height: 300 });
    aggChart.title = `${res.metric}: mean and 95% band per group`;
    aggChart.setSeries(res.groups.map((g, i) => ({
      label: `${g.label} (n=${g.n})`, colour: colour(i), steps: g.curve.steps,
      timestamps: g.curve.steps, values: g.curve.mean.map(num), min: g.curve.lo.map(num),
      max: g.curve.hi.map(num), exact: true })));
    clear(aggBox, ...significanceTables(res));
  }

  (async () => {
    try {
      const quoted = ids.map((id) => `'${id.replace(/'/g, "''")}'`).join(", ");
      const found = await searchAll(`attributes.run_id IN (${quoted})`);
      runs = ids.map((id) => found.find((r) => r.id === id)).filter(Boolean);
    } catch (err) {
      clear(head, errorBox(err));
      return;
    }
    const missing = ids.filter((id) => !runs.some((r) => r.id === id));
    clear(head, h("ul", { class: "run-list" }, runs.map((r, i) => h("li", {},
      h("i", { class: "swatch", style: { background: colour(i) } }), h("a", { href: `/runs/${r.id}` }, r.name), " ", statusBadge(r.status)))),
    missing.length ? errorBox(`not found: ${missing.join(", ")}`) : null);
    const keys = [...new Set(runs.flatMap((r) => Object.keys(r.metric_summaries)))].sort();
    for (const sel of [metricSel, aggMetric]) clear(sel, keys.map((k) => h("option", { value: k }, k)));
    // Parallel coordinates over the params that differ, ending on the metric's last value.
    const varying = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].sort()
      .filter((k) => new Set(runs.map((r) => r.params[k])).size > 1);
    clear(pcMetric, keys.map((k) => h("option", { value: k }, k)));
    clear(scatterParam, varying.map((k) => h("option", { value: k }, k)));
    const metricOf = (r) => { const m = r.metric_summaries[pcMetric.value]; return m ? m.value : null; };
    const renderPlots = () => {
      clear(pcBox, varying.length || keys.length ? parallelCoordinates(runs, [
        ...varying.map((k) => ({ label: k, value: (r) => r.params[k] })),
        ...(pcMetric.value ? [{ label: pcMetric.value, value: metricOf }] : [])],
      { width: Math.max(420, pcBox.clientWidth || 700) }) : h("p", { class: "muted" }, "No params differ."));
      clear(scatterBox, scatterParam.value && pcMetric.value
        ? scatter(runs, (r) => r.params[scatterParam.value], metricOf, { xLabel: scatterParam.value, yLabel: pcMetric.value })
        : h("p", { class: "muted" }, "Scatter: needs a param that differs and a metric."));
    };
    pcMetric.addEventListener("change", renderPlots);
    scatterParam.addEventListener("change", renderPlots);
    renderPlots();
    const renderDiff = () => clear(diffBox, paramsDiff(runs, onlyDiff.checked));
    onlyDiff.addEventListener("change", renderDiff);
    renderDiff();
    metricSel.addEventListener("change", () => { zoom = null; drawChart(); });
    aggBtn.addEventListener("click", aggregate);
    await drawChart();
    if (keys.length && runs.some((r) => across.value.split(",").some((k) => k.trim() in r.params))) await aggregate();
  })();

  return () => {
    disposed = true;
    if (chart) chart.destroy();
    if (aggChart) aggChart.destroy();
  };
}
