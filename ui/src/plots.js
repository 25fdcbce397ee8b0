// Small SVG plots for the compare page: parallel coordinates and a param-vs-metric scatter.
// A handful to a few hundred runs: SVG keeps each line hoverable and needs no library.
import { h, fmtValue, colour } from "./util.js";

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

/** A scale for one axis: numbers linearly, anything else as evenly spaced categories. */
export function axisScale(values) {
  const present = values.filter((v) => v !== undefined && v !== null && v !== "");
  const nums = present.map(Number);
  if (present.length && nums.every(Number.isFinite)) {
    const lo = Math.min(...nums);
    const hi = Math.max(...nums);
    const span = hi - lo || 1;
    return { numeric: true, ticks: [lo, hi], pos: (v) => (v === undefined || v === null || v === "" ? null : (Number(v) - lo) / span) };
  }
  const cats = [...new Set(present.map(String))].sort();
  return { numeric: false, ticks: cats,
    // Categories sit in the middle of equal slots, never on the plot's edges.
    pos: (v) => (v === undefined || v === null ? null : (cats.indexOf(String(v)) + 0.5) / cats.length) };
}

/** Runs as lines across axes; axes: [{label, value(run)}]. */
export function parallelCoordinates(runs, axes, { width = 900, height = 260 } = {}) {
  const pad = { l: 40, r: 40, t: 30, b: 24 };
  const step = axes.length > 1 ? (width - pad.l - pad.r) / (axes.length - 1) : 0;
  const plotH = height - pad.t - pad.b;
  const scales = axes.map((a) => axisScale(runs.map(a.value)));
  const root = svg("svg", { class: "parallel", width, height, viewBox: `0 0 ${width} ${height}` });
  runs.forEach((r, i) => {
    const pts = [];
    axes.forEach((a, j) => {
      const p = scales[j].pos(a.value(r));
      if (p !== null) pts.push(`${pad.l + j * step},${pad.t + (1 - p) * plotH}`);
    });
    root.append(svg("polyline", { points: pts.join(" "), stroke: colour(i), class: "pc-line" },
      svg("title", {}, r.name)));
  });
  axes.forEach((a, j) => {
    const x = pad.l + j * step;
    const s = scales[j];
    root.append(svg("line", { x1: x, x2: x, y1: pad.t, y2: pad.t + plotH, class: "pc-axis" }),
      svg("text", { x, y: pad.t - 12, class: "pc-label", "text-anchor": "middle" }, a.label));
    const ticks = s.numeric ? s.ticks : s.ticks.slice(0, 12);
    for (const t of ticks) {
      const p = s.pos(t);
      root.append(svg("text", { x: x + 4, y: pad.t + (1 - p) * plotH + 4, class: "pc-tick" }, fmtValue(s.numeric ? t : String(t))));
    }
  });
  return root;
}

/** One point per run: x a param (or any value), y a metric. */
export function scatter(runs, xOf, yOf, { xLabel = "", yLabel = "", width = 520, height = 300 } = {}) {
  const pad = { l: 56, r: 16, t: 12, b: 40 };
  const xs = axisScale(runs.map(xOf));
  const ys = axisScale(runs.map(yOf));
  const w = width - pad.l - pad.r;
  const hgt = height - pad.t - pad.b;
  const root = svg("svg", { class: "scatter", width: "100%", viewBox: `0 0 ${width} ${height}` });
  root.append(svg("rect", { x: pad.l, y: pad.t, width: w, height: hgt, class: "sc-frame" }));
  runs.forEach((r, i) => {
    const px = xs.pos(xOf(r));
    const py = ys.pos(yOf(r));
    if (px === null || py === null) return;
    root.append(svg("circle", { cx: pad.l + px * w, cy: pad.t + (1 - py) * hgt, r: 5, fill: colour(i), class: "sc-dot" },
      svg("title", {}, `${r.name}: ${xLabel}=${fmtValue(xOf(r))}, ${yLabel}=${fmtValue(yOf(r))}`)));
  });
  for (const t of xs.numeric ? xs.ticks : xs.ticks.slice(0, 12)) {
    root.append(svg("text", { x: pad.l + xs.pos(t) * w, y: pad.t + hgt + 16, class: "pc-tick", "text-anchor": "middle" }, fmtValue(xs.numeric ? t : String(t))));
  }
  for (const t of ys.numeric ? ys.ticks : ys.ticks.slice(0, 12)) {
    root.append(svg("text", { x: pad.l - 6, y: pad.t + (1 - ys.pos(t)) * hgt + 4, class: "pc-tick", "text-anchor": "end" }, fmtValue(ys.numeric ? t : String(t))));
  }
  root.append(svg("text", { x: pad.l + w / 2, y: height - 6, class: "pc-label", "text-anchor": "middle" }, xLabel),
    svg("text", { x: 12, y: pad.t + hgt / 2, class: "pc-label", transform: `rotate(-90 12 ${pad.t + hgt / 2})`, "text-anchor": "middle" }, yLabel));
  return h("div", { class: "scatter-box", style: { maxWidth: `${width}px` } }, root);
}
