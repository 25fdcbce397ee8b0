// Line charts on uPlot (canvas, built for long time series).
//
// Every series arrives exact or as a per-pixel min/max envelope from the server: the
// envelope is drawn as a band behind the line, so no spike disappears.  Dragging
// across the chart zooms; the owner is told the step range and fetches its exact
// points.  Double-click goes back to the whole series.
import uPlot from "uplot";
import { h, num, fmtValue, fmtTime } from "./util.js";

/** Exponential moving average with TensorBoard's debiasing; gaps stay gaps. */
export function smooth(values, weight) {
  if (!weight) return values;
  const out = new Array(values.length);
  let acc = 0;
  let norm = 0;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || !Number.isFinite(v)) {
      out[i] = null;
      continue;
    }
    acc = acc * weight + (1 - weight) * v;
    norm = norm * weight + (1 - weight);
    out[i] = acc / norm;
  }
  return out;
}

function xsOf(s, xMode) {
  if (xMode === "time") return s.timestamps.map((t) => t / 1000);
  if (xMode === "relative") {
    const t0 = s.timestamps.length ? Math.min(...s.timestamps.slice(0, 1000)) : 0;
    return s.timestamps.map((t) => (t - t0) / 1000);
  }
  return s.steps;
}

function clean(values, log) {
  return values.map((v) => {
    const x = num(v);
    if (x === null || !Number.isFinite(x)) return null;
    return log && x <= 0 ? null : x;
  });
}

/** Columns sorted by x (wall-clock time need not follow steps). */
function sortedColumns(xs, cols) {
  let sorted = true;
  for (let i = 1; i < xs.length; i++) if (xs[i] < xs[i - 1]) { sorted = false; break; }
  if (sorted) return [xs, cols];
  const idx = xs.map((_, i) => i).sort((a, b) => xs[a] - xs[b]);
  return [idx.map((i) => xs[i]), cols.map((c) => idx.map((i) => c[i]))];
}

export class Chart {
  /** el: where to draw; onZoom({step_min, step_max} | null) when the user zooms or resets. */
  constructor(el, { title = "", height = 220, onZoom = null } = {}) {
    this.el = el;
    this.title = title;
    this.height = height;
    this.onZoom = onZoom;
    this.opts = { xMode: "step", smoothing: 0, log: false };
    this.series = [];
    this.plot = null;
    this.zoomed = null;
    this.legend = h("div", { class: "legend" });
    this.info = h("span", { class: "chart-info" });
    this.canvasBox = h("div", { class: "plot" });
    el.append(h("div", { class: "chart-title" }, h("span", {}, title), this.info), this.canvasBox,
      this.legend);
    this.resize = new ResizeObserver(() => {
      if (this.plot) this.plot.setSize({ width: this.width(), height: this.height });
    });
    this.resize.observe(el);
    el.chart = this;  // for tests and benchmarks
    this.canvasBox.addEventListener("dblclick", () => {
      this.zoomed = null;
      if (this.onZoom) this.onZoom(null);
    });
  }

  width() {
    return Math.max(200, this.el.clientWidth - 2);
  }

  /** How many points per series the chart can show: one per pixel. */
  points() {
    return Math.min(4000, Math.max(100, Math.round(this.width())));
  }

  setOptions(opts) {
    Object.assign(this.opts, opts);
    this.draw();
  }

  /** series: [{label, colour, steps, timestamps, values, min?, max?, exact}] */
  setSeries(series) {
    this.series = series;
    this.draw();
  }

  draw() {
    const { xMode, smoothing, log } = this.opts;
    const tables = [];
    const config = [{}];
    const bands = [];
    const legend = [];
    const lines = [];  // [column, label] of each series' line, for the hover read-out
    let col = 1;
    let shown = 0;
    for (const s of this.series) {
      const [xs, cols] = sortedColumns(xsOf(s, xMode), [
        clean(s.values, log), ...(s.min ? [clean(s.min, log), clean(s.max, log)] : [])]);
      const raw = cols[0];
      const line = smooth(raw, smoothing);
      const table = [xs, line];
      config.push({ label: s.label, stroke: s.colour, width: 1.5, points: { show: xs.length < 60 },
        spanGaps: true });
      lines.push([col, s.label]);
      col++;
      if (cols.length > 1) {
        table.push(cols[2], cols[1]);
        // Thin edges as well as the fill: a one-bucket spike is a hairline, still visible.
        config.push({ label: `${s.label} max`, stroke: s.colour + "99", width: 1, points: { show: false } });
        config.push({ label: `${s.label} min`, stroke: s.colour + "99", width: 1, points: { show: false } });
        bands.push({ series: [col, col + 1], fill: s.colour + "38" });
        col += 2;
      }
      if (smoothing) {
        table.push(raw);
        config.push({ label: `${s.label} raw`, stroke: s.colour + "40", width: 1, points: { show: false } });
        col++;
      }
      tables.push(table);
      shown += s.count ?? xs.length;
      legend.push(h("span", { class: "legend-item" }, h("i", { style: { background: s.colour } }),
        s.label + (s.exact === false ? " (min/max per pixel)" : "")));
    }
    this.legend.replaceChildren(...legend);
    this.info.textContent = this.zoomed ? "zoomed · double-click to reset" : "";
    const data = tables.length === 1 ? tables[0] : tables.length ? uPlot.join(tables) : [[]];
    if (this.plot) this.plot.destroy();
    const time = xMode === "time";
    const opts = {
      width: this.width(),
      height: this.height,
      legend: { show: false },
      cursor: { drag: { x: true, y: false, setScale: true } },
      scales: { x: { time }, y: { distr: log ? 3 : 1 } },
      axes: [{ label: xMode === "step" ? "step" : xMode === "time" ? "" : "seconds", size: 36 },
        { size: 56 }],
      series: config,
      bands,
      hooks: { setSelect: [(u) => this.selected(u)], draw: [(u) => this.drawn(u)],
        setCursor: [(u) => this.hover(u)] },
    };
    this.shown = shown;
    this.lines = lines;
    this.plot = new uPlot(opts, data, this.canvasBox);
  }

  /** After each paint: what the chart shows, for tests and benchmarks (a canvas is opaque). */
  drawn(u) {
    const ys = u.scales.y;
    Object.assign(this.el.dataset, { points: String(this.shown), ready: "1", xMode: this.opts.xMode,
      log: String(this.opts.log), exact: String(this.series.every((s) => s.exact !== false)),
      ymax: String(ys.max), ymin: String(ys.min) });
  }

  /** The values under the cursor, in the title line (the legend is off: too many series). */
  hover(u) {
    const i = u.cursor.idx;
    if (i === null || i === undefined) {
      this.info.textContent = this.zoomed ? "zoomed · double-click to reset" : "";
      return;
    }
    const x = u.data[0][i];
    const xText = this.opts.xMode === "step" ? `step ${x}` : this.opts.xMode === "time" ? fmtTime(x * 1000) : `${fmtValue(x)} s`;
    const parts = this.lines.map(([c, label]) => [label, u.data[c][i]])
      .filter(([, v]) => v !== null && v !== undefined).slice(0, 6)
      .map(([label, v]) => (this.lines.length > 1 ? `${label} ${fmtValue(v)}` : fmtValue(v)));
    this.info.textContent = `${xText}: ${parts.join(" · ")}`;
  }

  selected(u) {
    if (u.select.width < 4 || !this.onZoom) return;
    const lo = u.posToVal(u.select.left, "x");
    const hi = u.posToVal(u.select.left + u.select.width, "x");
    const range = this.stepRange(lo, hi);
    if (!range) return;
    this.zoomed = range;
    this.onZoom(range);
  }

  /** The step range behind an x range, whatever the x axis shows. */
  stepRange(lo, hi) {
    if (this.opts.xMode === "step") return { step_min: Math.floor(lo), step_max: Math.ceil(hi) };
    let min = Infinity;
    let max = -Infinity;
    for (const s of this.series) {
      const xs = xsOf(s, this.opts.xMode);
      for (let i = 0; i < xs.length; i++) {
        if (xs[i] >= lo && xs[i] <= hi) {
          min = Math.min(min, s.steps[i]);
          max = Math.max(max, s.steps[i]);
        }
      }
    }
    return Number.isFinite(min) ? { step_min: min, step_max: max } : null;
  }

  destroy() {
    this.resize.disconnect();
    if (this.plot) this.plot.destroy();
    this.plot = null;
  }
}

/** The x-axis / smoothing / log-scale controls shared by a page's charts. */
export function chartControls(state, onChange) {
  const xSel = h("select", { "aria-label": "x axis", onchange: () => { state.xMode = xSel.value; onChange(); } },
    h("option", { value: "step" }, "x: step"),
    h("option", { value: "time" }, "x: wall-clock time"),
    h("option", { value: "relative" }, "x: relative time"));
  xSel.value = state.xMode;
  const smoothIn = h("input", { type: "range", min: 0, max: 0.99, step: 0.01, value: state.smoothing,
    "aria-label": "smoothing", oninput: () => { state.smoothing = +smoothIn.value; smoothOut.textContent = smoothIn.value; onChange(); } });
  const smoothOut = h("span", { class: "muted" }, String(state.smoothing));
  const logIn = h("input", { type: "checkbox", checked: state.log, onchange: () => { state.log = logIn.checked; onChange(); } });
  return h("div", { class: "chart-controls" }, xSel,
    h("label", {}, "smoothing ", smoothIn, " ", smoothOut),
    h("label", {}, logIn, " log scale"));
}
