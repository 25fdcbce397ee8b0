// The lineage graph of a run, model version or data set version, laid out by dagre
// (@dagrejs/dagre: ranked left to right, from what was used to what was made, with
// crossings reduced).  Drag to pan, wheel or the +/− buttons to zoom, "fit" to see it
// all.  Click a node to centre the graph on it, and the centred node to open its page;
// hover an edge for its relation.
import { Graph, layout } from "@dagrejs/dagre";
import { api } from "../api.js";
import { h, clear, errorBox } from "../util.js";

const SVG = "http://www.w3.org/2000/svg";
const NODE_W = 180;
const NODE_H = 40;
export const RANKDIR = "LR"; // edges run left to right: upstream on the left
const MIN_SCALE = 0.2;
const MAX_SCALE = 3;
const STEP = 1.25; // one click of + or −
const DRAG_SLOP = 4; // pixels a press may move and still be a click

function svg(tag, attrs, ...children) {
  const el = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  el.append(...children);
  return el;
}

function link(n) {
  const [kind, key] = [n.kind, n.id.slice(n.id.indexOf(":") + 1)];
  if (kind === "run") return `/runs/${key}`;
  if (kind === "model") return `/models/${encodeURIComponent(key.split("@")[0])}`;
  if (kind === "dataset") return `/datasets/${encodeURIComponent(key.split("@")[0])}`;
  return null;
}

/** Node centres, edge routes and the drawing's size, as dagre lays them out. */
export function layoutGraph(nodes, edges) {
  const g = new Graph({ multigraph: true });
  g.setGraph({ rankdir: RANKDIR, nodesep: 24, ranksep: 80, edgesep: 16, marginx: 16, marginy: 16 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const n of nodes) g.setNode(n.id, { width: NODE_W, height: NODE_H });
  const kept = edges.filter((e) => g.hasNode(e.source) && g.hasNode(e.target) && e.source !== e.target);
  kept.forEach((e, i) => g.setEdge(e.source, e.target, {}, `e${i}`));
  layout(g);
  const pos = new Map(nodes.map((n) => [n.id, g.node(n.id)]));
  const routes = kept.map((e, i) => ({ edge: e, points: g.edge(e.source, e.target, `e${i}`).points }));
  const { width, height } = g.graph();
  return { pos, routes, width, height };
}

/** A smooth path through dagre's bend points (quadratic pieces between their midpoints). */
function pathThrough(points) {
  if (points.length < 3) return `M${points.map((p) => `${p.x},${p.y}`).join(" L")}`;
  let d = `M${points[0].x},${points[0].y}`;
  for (let i = 1; i < points.length - 1; i++) {
    const p = points[i];
    const q = points[i + 1];
    const end = i === points.length - 2 ? q : { x: (p.x + q.x) / 2, y: (p.y + q.y) / 2 };
    d += ` Q${p.x},${p.y} ${end.x},${end.y}`;
  }
  return d;
}

function relationText(e) {
  return `${e.relation}${e.role ? ` (${e.role})` : ""}`;
}

/** Pan and zoom for an <svg> whose drawing lives in one <g>; `view` is its transform. */
function panZoom(canvas, viewport, size) {
  const view = { x: 0, y: 0, k: 1 };
  let press = null;
  const apply = () => {
    viewport.setAttribute("transform", `translate(${view.x.toFixed(1)},${view.y.toFixed(1)}) scale(${view.k.toFixed(4)})`);
    canvas.dataset.scale = view.k.toFixed(4);
  };
  const box = () => canvas.getBoundingClientRect();
  const zoomAt = (factor, cx, cy) => {
    const k = Math.min(MAX_SCALE, Math.max(MIN_SCALE, view.k * factor));
    const f = k / view.k;
    view.x = cx - (cx - view.x) * f;
    view.y = cy - (cy - view.y) * f;
    view.k = k;
    apply();
  };
  const zoomCentre = (factor) => { const b = box(); zoomAt(factor, b.width / 2, b.height / 2); };
  const fit = () => {
    const b = box();
    const k = Math.min(1, Math.max(MIN_SCALE, Math.min(b.width / size.width, b.height / size.height)));
    view.k = k;
    view.x = (b.width - size.width * k) / 2;
    view.y = (b.height - size.height * k) / 2;
    apply();
  };
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    const b = box();
    const delta = ev.deltaMode === 1 ? ev.deltaY * 16 : ev.deltaY; // lines or pixels
    zoomAt(Math.exp(-delta * 0.002), ev.clientX - b.left, ev.clientY - b.top);
  }, { passive: false });
  canvas.addEventListener("pointerdown", (ev) => {
    if (ev.button !== 0) return;
    press = { id: ev.pointerId, x: ev.clientX, y: ev.clientY, vx: view.x, vy: view.y, dragging: false };
  });
  canvas.addEventListener("pointermove", (ev) => {
    if (!press || ev.pointerId !== press.id) return;
    const dx = ev.clientX - press.x;
    const dy = ev.clientY - press.y;
    if (!press.dragging && Math.hypot(dx, dy) < DRAG_SLOP) return;
    if (!press.dragging) {
      press.dragging = true;
      canvas.setPointerCapture(ev.pointerId); // keep panning outside the box
      canvas.classList.add("panning");
    }
    view.x = press.vx + dx;
    view.y = press.vy + dy;
    apply();
  });
  let justDragged = false;
  const release = (ev) => {
    if (!press || ev.pointerId !== press.id) return;
    if (press.dragging) {
      canvas.classList.remove("panning");
      justDragged = true; // the click that ends a drag is no click on a node
      setTimeout(() => { justDragged = false; }, 0);
    }
    press = null;
  };
  canvas.addEventListener("pointerup", release);
  canvas.addEventListener("pointercancel", release);
  canvas.addEventListener("click", (ev) => { if (justDragged) ev.stopPropagation(); }, { capture: true });
  return { fit, zoomIn: () => zoomCentre(STEP), zoomOut: () => zoomCentre(1 / STEP) };
}

export function lineagePage(root, _args, params, navigate) {
  const node = params.get("node") || "";
  const direction = params.get("direction") || "both";
  const box = h("div", { class: "lineage" });
  const dirSel = h("select", { "aria-label": "direction", onchange: () => navigate(`/lineage?node=${encodeURIComponent(node)}&direction=${dirSel.value}`) },
    [["both", "up and down"], ["up", "upstream"], ["down", "downstream"]].map(([v, t]) => h("option", { value: v }, t)));
  dirSel.value = direction;
  const zoomBar = h("span", { class: "zoom-buttons" });
  clear(root, h("h1", {}, "Lineage"), h("div", { class: "toolbar" }, h("code", {}, node), dirSel, zoomBar), box);
  if (!node) { clear(box, h("p", { class: "muted" }, "Open the lineage of a run, model version or data set version from its page.")); return null; }
  api("/lineage", { query: { node, direction, depth: 10 } }).then((g) => {
    const { pos, routes, width, height } = layoutGraph(g.nodes, g.edges);
    const canvas = svg("svg", { class: "graph", role: "img", "aria-label": `lineage of ${g.root}`,
      "data-rankdir": RANKDIR, style: `height: ${Math.round(Math.min(Math.max(height, 160), 640))}px` });
    const viewport = svg("g", { class: "viewport" });
    const labels = svg("g", { class: "edge-labels" }); // above the nodes
    canvas.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 6, markerHeight: 6, orient: "auto" }, svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#888" }))),
      svg("rect", { class: "backdrop", width: "100%", height: "100%" }), viewport);
    for (const { edge: e, points } of routes) {
      const d = pathThrough(points);
      const mid = points[Math.floor(points.length / 2)];
      const text = svg("text", { x: mid.x, y: mid.y + 4, "text-anchor": "middle" }, relationText(e));
      const label = svg("g", { class: "edge-label", visibility: "hidden" }, svg("rect", { rx: 3 }), text);
      labels.append(label);
      const group = svg("g", { class: "edge-group", "data-source": e.source, "data-target": e.target, "data-relation": e.relation },
        svg("path", { d, class: "edge-hit" }), svg("path", { d, class: "edge", "marker-end": "url(#arrow)" }));
      group.addEventListener("pointerenter", () => {
        label.setAttribute("visibility", "visible");
        const b = text.getBBox();
        const pad = 3;
        const r = label.firstChild;
        r.setAttribute("x", b.x - pad); r.setAttribute("y", b.y - pad);
        r.setAttribute("width", b.width + 2 * pad); r.setAttribute("height", b.height + 2 * pad);
        group.classList.add("hover");
      });
      group.addEventListener("pointerleave", () => { label.setAttribute("visibility", "hidden"); group.classList.remove("hover"); });
      viewport.append(group);
    }
    for (const n of g.nodes) {
      const p = pos.get(n.id);
      const group = svg("g", { class: `node kind-${n.kind}${n.id === g.root ? " root" : ""}${n.attrs && n.attrs.missing ? " missing" : ""}`,
        transform: `translate(${p.x - NODE_W / 2},${p.y - NODE_H / 2})`, "data-id": n.id, tabindex: 0, role: "link" });
      group.append(svg("rect", { width: NODE_W, height: NODE_H, rx: 6 }),
        svg("text", { x: 8, y: 16, class: "kind" }, n.kind),
        svg("text", { x: 8, y: 32 }, (n.label || n.id).slice(0, 26)),
        svg("title", {}, n.id));
      const target = link(n);
      const open = () => {
        if (n.id === g.root) { if (target) navigate(target); return; }
        navigate(`/lineage?node=${encodeURIComponent(n.id)}&direction=${direction}`);
      };
      group.addEventListener("click", open);
      group.addEventListener("keydown", (ev) => { if (ev.key === "Enter") open(); });
      viewport.append(group);
    }
    viewport.append(labels);
    clear(box, canvas, h("p", { class: "muted small" },
      "Drag to pan, scroll to zoom. Click a node to centre the graph on it; click the centred node to open its page. Hover an edge for its relation."));
    const pz = panZoom(canvas, viewport, { width, height });
    clear(zoomBar,
      h("button", { type: "button", title: "zoom in", "aria-label": "zoom in", onclick: pz.zoomIn }, "+"),
      h("button", { type: "button", title: "zoom out", "aria-label": "zoom out", onclick: pz.zoomOut }, "−"),
      h("button", { type: "button", title: "fit the graph to the box", "aria-label": "fit", onclick: pz.fit }, "fit"));
    pz.fit();
  }).catch((err) => clear(box, errorBox(err)));
  return null;
}
