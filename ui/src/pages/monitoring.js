// A registered model's monitoring: the arms serving it, its alerts, data drift per version
// (a heatmap of features x windows, with a table of the same cells) and live quality
// (one chart per metric, a line per version). One request: GET /ui/models/NAME/monitoring.
import { api } from "../api.js";
import { Chart } from "../chart.js";
import { h, clear, fmtTime, fmtValue, stageBadge, errorBox, colour, num } from "../util.js";

const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, ...children) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const c of children) el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return el;
}

const windowTime = (step) => fmtTime(step * 1000);  // a window's step is its end, in seconds
const finite = (x) => (Number.isFinite(num(x)) ? num(x) : null);  // "NaN" from the server: none

function cellText(f, i) {
  const d = f.drifted[i];
  const score = f.score[i];
  const missing = f.missing[i];
  const verdict = d === null || d === undefined ? "not compared" : d ? "drifted" : "no drift";
  const parts = [verdict];
  if (score !== null && score !== undefined) parts.push(`score ${fmtValue(score)}`);
  if (finite(missing)) parts.push(`${fmtValue(finite(missing) * 100)}% missing`);
  return parts.join(", ");
}

function cellClass(d) {
  return d === null || d === undefined ? "none" : d ? "drifted" : "ok";
}

/**
 * Features x windows as SVG cells coloured by the drift verdict, each with a <title> (the
 * feature, the window's end, the verdict and score): hovering shows it, and screen readers
 * read it. The top row is the share of drifted features in that window. The names stay put
 * on the left while the cells scroll, opening on the newest windows.
 */
function heatmap(v) {
  const n = v.windows.length;
  const cw = Math.max(4, Math.min(24, Math.floor(900 / Math.max(n, 1))));
  const ch = v.features.length > 30 ? 13 : 18;  // many features: thinner rows
  const left = 150;
  const top = 4;
  const rows = v.features.length + 1;
  const width = Math.max(n * cw + 4, 300);  // room for the windows' times
  const height = top + rows * ch + 24;
  const names = svg("svg", { class: "heatmap-names", width: left, height, "aria-hidden": "true" });
  const root = svg("svg", { class: "heatmap", width, height, viewBox: `0 0 ${width} ${height}`, role: "img",
    "aria-label": `drift of ${v.features.length} features over ${n} windows of version ${v.version}` });
  const label = (y, text) => names.append(svg("text", { x: left - 6, y: y + ch - 5, class: "hm-label", "text-anchor": "end" },
    text.length > 22 ? text.slice(0, 21) + "…" : text, svg("title", {}, text)));
  label(top, "share drifted");
  v.windows.forEach((w, i) => {
    const share = finite(v.share[i]);
    const alarm = v.drifted[i];
    root.append(svg("rect", { x: i * cw, y: top, width: cw - 1, height: ch - 1,
      class: `hm-cell hm-share${alarm ? " drifted" : ""}`, "data-window": w,
      "fill-opacity": share === null ? 0.08 : 0.15 + 0.85 * share },
    svg("title", {}, `${windowTime(w)}: ${share === null ? "no share" : `${fmtValue(share * 100)}% of features drifted`}${alarm ? " (over the threshold)" : ""}, ${v.rows[i] ?? 0} rows`)));
  });
  v.features.forEach((f, j) => {
    const y = top + (j + 1) * ch;
    label(y, f.name);
    v.windows.forEach((w, i) => {
      root.append(svg("rect", { x: i * cw, y, width: cw - 1, height: ch - 1,
        class: `hm-cell hm-${cellClass(f.drifted[i])}`, "data-feature": f.name, "data-window": w },
      svg("title", {}, `${f.name} at ${windowTime(w)}: ${cellText(f, i)}`)));
    });
  });
  if (n) {
    // The first and last windows' ends under the cells; on one line when the cells are too
    // narrow for two labels.
    const y = top + rows * ch + 14;
    const first = windowTime(v.windows[0]);
    const lastText = windowTime(v.windows[n - 1]);
    if (n * cw >= 280) {
      root.append(svg("text", { x: 0, y, class: "hm-label" }, first),
        svg("text", { x: n * cw, y, class: "hm-label", "text-anchor": "end" }, lastText));
    } else {
      root.append(svg("text", { x: 0, y, class: "hm-label" }, n > 1 ? `${first} → ${lastText}` : first));
    }
  }
  const cells = h("div", { class: "heatmap-cells" }, root);
  requestAnimationFrame(() => { cells.scrollLeft = cells.scrollWidth; });  // once in the page
  return h("div", { class: "heatmap-box" }, names, cells);
}

const TABLE_ROWS = 100;  // windows per step of the table: 100 x 100 features is 10,000 cells

/**
 * The heatmap's cells as a table (windows as rows, newest first), built only when opened and
 * TABLE_ROWS windows at a time: the whole matrix is up to 500 x 100 cells.
 */
function driftTable(v) {
  const box = h("details", { class: "drift-table" }, h("summary", {}, "Show as a table"));
  const order = [...v.windows.keys()].reverse();
  let shown = 0;
  const row = (i) => h("tr", {},
    h("td", {}, windowTime(v.windows[i])), h("td", { class: "num" }, fmtValue(v.rows[i])),
    h("td", { class: "num" }, finite(v.share[i]) === null ? "—" : `${fmtValue(finite(v.share[i]) * 100)}%`),
    v.features.map((f) => h("td", { class: `hm-${cellClass(f.drifted[i])}` }, cellText(f, i))));
  box.addEventListener("toggle", () => {
    if (!box.open || box.querySelector("table")) return;
    const body = h("tbody", {});
    const more = h("button", { class: "more-windows", onclick: () => grow() });
    const grow = () => {
      body.append(...order.slice(shown, shown + TABLE_ROWS).map(row));
      shown = Math.min(order.length, shown + TABLE_ROWS);
      more.textContent = `Show ${Math.min(TABLE_ROWS, order.length - shown)} older windows (${shown} of ${order.length} shown)`;
      more.style.display = shown < order.length ? "" : "none";
    };
    grow();
    box.append(h("div", { class: "table-scroll" }, h("table", { class: "grid drift" },
      h("thead", {}, h("tr", {}, h("th", {}, "window end"), h("th", {}, "rows"), h("th", {}, "share drifted"),
        v.features.map((f) => h("th", {}, f.name)))), body)), more);
  });
  return box;
}

function driftSection(v, name) {
  if (!v.windows.length) {
    return h("p", { class: "muted" }, `Version ${v.version} has a monitoring run but no drift window yet: run `,
      h("code", {}, `cairn monitor drift models:/${name}/${v.version}`), ".");
  }
  const last = v.windows.length - 1;
  const drifting = v.features.filter((f) => f.drifted[last]).map((f) => f.name);
  const notes = [];
  if (v.windows_total > v.windows.length) notes.push(`the newest ${v.windows.length} of ${v.windows_total} windows`);
  if (v.features_total > v.features.length) notes.push(`the ${v.features.length} most drifted of ${v.features_total} features`);
  return h("div", { class: "drift-version", "data-version": v.version },
    h("p", {}, `Last window (ending ${windowTime(v.windows[last])}): `,
      drifting.length ? h("b", { class: "drift-alarm" }, `drift in ${drifting.join(", ")}`) : "no feature drifted",
      notes.length ? h("span", { class: "muted" }, ` · showing ${notes.join(" and ")}`) : null),
    heatmap(v),
    h("div", { class: "hm-legend muted" }, h("span", { class: "swatch hm-drifted" }), "drifted ",
      h("span", { class: "swatch hm-ok" }), "no drift ", h("span", { class: "swatch hm-none" }), "not compared · hover a cell for its score"),
    driftTable(v));
}

/** One chart per live metric, a line per version: primary and canary side by side. */
function liveCharts(versions, arms, charts) {
  const byKey = new Map();
  versions.forEach((v, i) => {
    // A served version is named with its arms: the canary's line next to the primary's.
    const on = [...new Set(arms.filter((a) => a.version === v.version).map((a) => a.arm))];
    const label = on.length ? `${v.version} (${on.join(", ")})` : v.version;
    const line = (s, text, shade) => ({ label: text, colour: colour(i) + shade, steps: s.steps,
      timestamps: s.steps.map((t) => t * 1000), values: s.values, exact: true, count: s.values.length });
    for (const s of v.live || []) {
      if (!byKey.has(s.key)) byKey.set(s.key, []);
      byKey.get(s.key).push(line(s, label, ""));
    }
    // The metric the version was registered with, as a paler line beside its live one.
    for (const s of v.train || []) {
      const key = "live." + s.key.slice("train.".length);
      if (byKey.has(key)) byKey.get(key).push(line(s, `${v.version} at registration`, "70"));
    }
  });
  if (!byKey.size) return null;
  const grid = h("div", { class: "charts" });
  const keys = [...byKey.keys()].sort();
  // Quality first, then the counts (requests, labelled), which have another scale.
  const counts = new Set(["live.requests", "live.labelled"]);
  keys.sort((a, b) => counts.has(a) - counts.has(b));
  for (const key of keys) {
    const el = h("div", { class: "chart", "data-key": key });
    grid.append(el);
    const chart = new Chart(el, { title: key, height: 200 });
    chart.opts.xMode = "time";
    chart.series = byKey.get(key);  // drawn once in the page, at its box's width
    charts.push(chart);
  }
  return grid;
}

function stateBadge(state) {
  return h("span", { class: `badge alert-${state}` }, state);
}

function valuesText(value) {
  if (value === null || value === undefined) return "";
  if (typeof value !== "object") return String(value);
  return Object.entries(value).map(([k, x]) => `${k}=${typeof x === "number" ? fmtValue(x) : JSON.stringify(x)}`).join(", ");
}

// An alert's target: its rule names the model bare or with an alias or stage (fraud@canary).
function target(model, name) {
  return model && model !== name ? [" ", h("span", { class: "alias" }, model.slice(name.length))] : null;
}

function actionText(a) {
  const result = a.result ? valuesText(a.result) : "";
  if (a.done_at === null || a.done_at === undefined) return `${a.kind}: in progress (claimed by ${a.claimed_by})`;
  return `${a.kind}: ${a.ok ? "done" : "failed"}${result ? ` (${result})` : ""}`;
}

function alertsSection(alerts, name) {
  if (!alerts.states.length && !alerts.history.length && !alerts.actions.length) {
    return h("p", { class: "muted" }, "No alert for this model: none of the rules applied with ",
      h("code", {}, "cairn monitor rules apply"), " has been evaluated for it yet.");
  }
  const states = alerts.states.length ? h("table", { class: "grid alert-states" },
    h("thead", {}, h("tr", {}, ["rule", "state", "since", "firings", "last values"].map((t) => h("th", {}, t)))),
    h("tbody", {}, alerts.states.map((s) => h("tr", { "data-rule": s.rule },
      h("td", {}, h("b", {}, s.rule), target(s.model, name)), h("td", {}, stateBadge(s.state)),
      h("td", {}, fmtTime(s.state === "pending" || s.state === "firing" ? s.active_since ?? s.changed_at : s.changed_at)),
      h("td", { class: "num" }, String(s.firing)), h("td", {}, h("code", {}, valuesText(s.value))))))) : null;
  // State changes and the actions firings took, in one timeline, newest first.
  const events = [
    ...alerts.history.map((e) => ({ at: e.at, el: h("li", { class: `ev-alert to-${e.to}`, "data-rule": e.rule },
      h("span", { class: "when" }, fmtTime(e.at)), " ", h("b", {}, e.rule), target(e.model, name), ": ", e.from, " → ", stateBadge(e.to),
      " ", h("span", { class: "muted" }, `by ${e.actor}`),
      valuesText(e.value) ? h("div", { class: "reason" }, h("code", {}, valuesText(e.value))) : null) })),
    ...alerts.actions.map((a) => ({ at: a.claimed_at, el: h("li", { class: `ev-action${a.done_at != null && !a.ok ? " failed" : ""}`, "data-rule": a.rule },
      h("span", { class: "when" }, fmtTime(a.claimed_at)), " ", h("b", {}, a.rule), target(a.model, name),
      ` firing ${a.firing}, action: `, h("b", {}, actionText(a))) })),
  ].sort((x, y) => y.at - x.at);
  const left = [alerts.history_truncated ? `the newest ${alerts.history.length} changes` : null,
    alerts.actions_truncated ? `the newest ${alerts.actions.length} actions` : null].filter(Boolean);
  return h("div", {}, states, h("h3", {}, "State changes and actions"),
    left.length ? h("p", { class: "muted" }, `Showing ${left.join(" and ")}.`) : null,
    h("ol", { class: "timeline alert-timeline" }, events.map((e) => e.el)));
}

function armsSection(data) {
  const aliases = Object.entries(data.aliases || {});
  const aliasLine = aliases.length ? h("p", {}, "Aliases: ", aliases.map(([a, v]) => h("span", { class: "alias" }, `@${a} → ${v}`))) : null;
  if (!data.arms.length) {
    return h("div", {}, aliasLine, h("p", { class: "muted" }, "No arm is serving this model: ",
      h("code", {}, "cairn serve"), " records each arm it starts, switches, rolls back or stops."));
  }
  return h("div", {}, aliasLine, h("table", { class: "grid arms" },
    h("thead", {}, h("tr", {}, ["deployment", "arm", "version", "since", "event", "reason"].map((t) => h("th", {}, t)))),
    h("tbody", {}, data.arms.map((a) => h("tr", { "data-arm": a.arm },
      h("td", {}, h("code", {}, a.deployment)), h("td", {}, h("b", {}, a.arm)), h("td", {}, a.version),
      h("td", {}, fmtTime(a.time)), h("td", {}, a.event), h("td", {}, a.reason))))));
}

function deploymentsSection(data) {
  if (!data.deployments.length) return h("p", { class: "muted" }, "No deployment event recorded.");
  return h("ol", { class: "timeline deploy-timeline" }, data.deployments.map((e) => h("li", { class: e.event === "rollback" ? "ev-rollback" : "" },
    h("span", { class: "when" }, fmtTime(e.time)), " ", h("b", {}, `${e.arm}: ${e.event} `),
    e.previous && e.event !== "start" ? `${e.previous} → ${e.version}` : e.version,
    " ", h("span", { class: "muted" }, `on ${e.deployment} by ${e.actor}`),
    e.reason ? h("div", { class: "reason" }, `“${e.reason}”`) : null)));
}

export function monitoringPage(root, [name]) {
  const enc = encodeURIComponent(name);
  const charts = [];
  const body = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  clear(root, h("div", { class: "crumbs" }, h("a", { href: "/models" }, "Models"), " / ",
    h("a", { href: `/models/${enc}` }, name), " / monitoring"),
  h("h1", {}, `${name}: monitoring`), body);

  (async () => {
    try {
      // A mistyped name is an answer here (200, model null), never a 404 the browser logs.
      const page = await api(`/ui/models/${enc}`);
      if (!page.model) {
        clear(root, h("h1", {}, "Model not found"), errorBox(page.message), h("a", { href: "/models" }, "All models"));
        return;
      }
      const data = await api(`/ui/models/${enc}/monitoring`);
      const monitored = data.versions.filter((v) => v.run_id);
      const served = new Set(data.arms.map((a) => a.version));
      // The version shown first: the primary arm's, else another served one, else the newest
      // with drift windows.
      const withDrift = monitored.filter((v) => v.loaded && v.windows.length);
      const primary = data.arms.find((a) => a.arm === "primary");
      const first = withDrift.find((v) => primary && v.version === primary.version)
        || withDrift.find((v) => served.has(v.version)) || withDrift[0] || monitored[0];
      const driftBox = h("div", { class: "drift-box" });
      const badge = h("span", {});
      const pick = h("select", { "aria-label": "drift of version", onchange: () => showDrift(pick.value) },
        monitored.map((v) => h("option", { value: v.version }, `${v.version}${served.has(v.version) ? " · serving" : ""}`)));
      // Only some versions' data come at first (the served ones, the newest monitored): the
      // others are asked for when picked.
      const showDrift = async (version) => {
        const v = monitored.find((x) => x.version === version);
        clear(badge, stageBadge(v.stage));
        if (!v.loaded) {
          clear(driftBox, h("p", { class: "muted" }, "Loading…"));
          try {
            const more = await api(`/ui/models/${enc}/monitoring`, { query: { version } });
            Object.assign(v, more.versions.find((x) => x.version === version));
          } catch (err) {
            clear(driftBox, errorBox(err));
            return;
          }
          if (pick.value !== version) return;  // another was picked meanwhile
        }
        clear(driftBox, driftSection(v, name));
      };
      let drift;
      if (!monitored.length) {
        drift = h("p", { class: "empty muted" }, "No monitoring data yet: run ",
          h("code", {}, `cairn monitor drift models:/${name}@production --window 1h`),
          " (from cron, say) to compare what a served version is asked with its training data; each ended window is stored and drawn here.");
      } else {
        pick.value = first.version;
        showDrift(first.version);
        drift = h("div", {}, h("div", { class: "toolbar" }, h("label", {}, "Version ", pick), badge), driftBox);
      }
      const live = liveCharts(monitored, data.arms, charts);
      clear(body,
        h("h2", {}, "Serving now"), armsSection(data),
        h("h2", {}, "Alerts"), alertsSection(data.alerts, name),
        h("h2", {}, "Data drift"), drift,
        h("h2", {}, "Live quality"), live ? h("p", { class: "muted" },
          "Per window, from the labels sent back for logged predictions: a line per version, and a paler one for the metric it was registered with. Drag to zoom, double-click to reset.") : null,
        live || h("p", { class: "muted" }, "No live metrics yet: send labels back for the logged predictions (",
          h("code", {}, `cairn monitor feedback labels.csv --model ${name}`), ") and run ",
          h("code", {}, `cairn monitor live models:/${name}@production`), "."),
        h("h2", {}, "Deployment history"), deploymentsSection(data));
      // Charts size themselves to their box: draw them again now that it is in the page.
      for (const c of charts) c.draw();
    } catch (err) {
      clear(body, errorBox(err));
    }
  })();
  return () => { for (const c of charts) c.destroy(); };
}
