// The lineage graph of a run, model version or data set version: layered left to right,
// from what was used to what was made.  Click a node to centre the graph on it, and
// the centred node to open its page.
import { api } from "../api.js";
import { h, clear, errorBox } from "../util.js";

const SVG = "http://www.w3.org/2000/svg";
const COL_W = 230;
const ROW_H = 64;

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

/** Each node's layer: the longest path from a source, so edges always go rightwards. */
function layers(nodes, edges) {
  const layer = new Map(nodes.map((n) => [n.id, 0]));
  for (let pass = 0; pass < nodes.length; pass++) {
    let changed = false;
    for (const e of edges) {
      if (layer.has(e.source) && layer.has(e.target) && layer.get(e.target) <= layer.get(e.source)) {
        layer.set(e.target, layer.get(e.source) + 1);
        changed = true;
      }
    }
    if (!changed) break;
  }
  return layer;
}

function link(n) {
  const [kind, key] = [n.kind, n.id.slice(n.id.indexOf(":") + 1)];
  if (kind === "run") return `/runs/${key}`;
  if (kind === "model") return `/models/${encodeURIComponent(key.split("@")[0])}`;
  if (kind === "dataset") return `/datasets/${encodeURIComponent(key.split("@")[0])}`;
  return null;
}

export function lineagePage(root, _args, params, navigate) {
  const node = params.get("node") || "";
  const direction = params.get("direction") || "both";
  const box = h("div", { class: "lineage" });
  const dirSel = h("select", { "aria-label": "direction", onchange: () => navigate(`/lineage?node=${encodeURIComponent(node)}&direction=${dirSel.value}`) },
    [["both", "up and down"], ["up", "upstream"], ["down", "downstream"]].map(([v, t]) => h("option", { value: v }, t)));
  dirSel.value = direction;
  clear(root, h("h1", {}, "Lineage"), h("div", { class: "toolbar" }, h("code", {}, node), dirSel), box);
  if (!node) { clear(box, h("p", { class: "muted" }, "Open the lineage of a run, model version or data set version from its page.")); return null; }
  api("/lineage", { query: { node, direction, depth: 10 } }).then((g) => {
    const layer = layers(g.nodes, g.edges);
    const byLayer = new Map();
    for (const n of g.nodes) {
      const l = layer.get(n.id);
      if (!byLayer.has(l)) byLayer.set(l, []);
      byLayer.get(l).push(n);
    }
    const pos = new Map();
    let height = 0;
    for (const [l, list] of byLayer) {
      list.forEach((n, i) => pos.set(n.id, { x: 20 + l * COL_W, y: 20 + i * ROW_H }));
      height = Math.max(height, list.length * ROW_H + 40);
    }
    const width = 40 + (Math.max(0, ...byLayer.keys()) + 1) * COL_W;
    const canvas = svg("svg", { width, height, class: "graph" });
    canvas.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" }, svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#888" }))));
    for (const e of g.edges) {
      const a = pos.get(e.source);
      const b = pos.get(e.target);
      if (!a || !b) continue;
      const x1 = a.x + 180; const y1 = a.y + 20; const x2 = b.x; const y2 = b.y + 20;
      canvas.append(svg("path", { d: `M${x1},${y1} C${x1 + 30},${y1} ${x2 - 30},${y2} ${x2},${y2}`, class: "edge", "marker-end": "url(#arrow)" },
        svg("title", {}, `${e.relation}${e.role ? ` (${e.role})` : ""}`)));
    }
    for (const n of g.nodes) {
      const p = pos.get(n.id);
      const group = svg("g", { class: `node kind-${n.kind}${n.id === g.root ? " root" : ""}`, transform: `translate(${p.x},${p.y})`, "data-id": n.id });
      group.append(svg("rect", { width: 180, height: 40, rx: 6 }),
        svg("text", { x: 8, y: 16, class: "kind" }, n.kind),
        svg("text", { x: 8, y: 32 }, (n.label || n.id).slice(0, 26)),
        svg("title", {}, n.id));
      const target = link(n);
      group.addEventListener("click", () => {
        if (n.id === g.root) { if (target) navigate(target); return; }
        navigate(`/lineage?node=${encodeURIComponent(n.id)}&direction=${direction}`);
      });
      canvas.append(group);
    }
    clear(box, canvas, h("p", { class: "muted small" }, "Click a node to centre the graph on it; click the centred node to open its page."));
  }).catch((err) => clear(box, errorBox(err)));
  return null;
}
