// The tables of a comparison across seeds (POST /ui/compare/aggregate): each group's
// value per run, and Welch's t and Mann-Whitney U between every two groups.  The compare
// page and a dashboard's significance panel show the same tables.
import { h, fmtValue, colour, num } from "./util.js";

// The most groups POST /ui/compare/aggregate compares (MAX_GROUPS in
// src/cairn/server/ui/aggregate.py; a test keeps the two equal).  Callers count the
// groups themselves first: asking for more gets a 400, which the browser logs as an error.
export const MAX_GROUPS = 20;

/** How many groups the server makes: runs that agree on every param outside `across`. */
export function groupCount(runs, across) {
  const ignore = new Set(across);
  const keys = [...new Set(runs.flatMap((r) => Object.keys(r.params)))].filter((k) => !ignore.has(k)).sort();
  return new Set(runs.map((r) => JSON.stringify(keys.map((k) => (k in r.params ? r.params[k] : null))))).size;
}

function pval(p) {
  if (p === null || p === undefined) return "—";
  const x = num(p);
  return h("span", { class: x < 0.05 ? "signif" : "" }, x < 1e-4 ? x.toExponential(1) : x.toFixed(4));
}

/** The groups table, the tests table and their note, for an aggregate answer `res`. */
export function significanceTables(res) {
  const groups = h("table", { class: "grid groups" },
    h("thead", {}, h("tr", {}, ["group", "n", ...res.across, `${res.summary} ${res.metric}: mean`, "std"].map((t) => h("th", {}, t)))),
    h("tbody", {}, res.groups.map((g, i) => h("tr", {},
      h("td", {}, h("i", { class: "swatch", style: { background: colour(i) } }), g.label), h("td", {}, g.n),
      res.across.map((k) => h("td", {}, (g.seeds[k] || []).join(", "))),
      h("td", { class: "num" }, fmtValue(num(g.final.mean))), h("td", { class: "num" }, fmtValue(num(g.final.std)))))));
  const tests = res.tests.length ? h("table", { class: "grid tests" },
    h("thead", {}, h("tr", {}, ["group A", "group B", "n A", "n B", "Welch t", "p (Welch)", "Cohen's d",
      "Mann-Whitney U", "p (U)", "rank-biserial r"].map((t) => h("th", {}, t)))),
    h("tbody", {}, res.tests.map((t) => h("tr", {},
      h("td", {}, res.groups[t.a].label), h("td", {}, res.groups[t.b].label),
      h("td", { class: "num" }, t.n_a), h("td", { class: "num" }, t.n_b),
      h("td", { class: "num" }, fmtValue(num(t.welch.t))), h("td", { class: "num" }, pval(t.welch.p)),
      h("td", { class: "num" }, fmtValue(num(t.welch.cohen_d))),
      h("td", { class: "num" }, fmtValue(num(t.mann_whitney.u))), h("td", { class: "num" }, pval(t.mann_whitney.p)),
      h("td", { class: "num" }, fmtValue(num(t.mann_whitney.rank_biserial))))))) : h("p", { class: "muted" }, "One group only: nothing to test.");
  return [h("h3", {}, "Groups"), groups, h("h3", {}, "Tests between groups"), tests,
    h("p", { class: "muted small" }, "p < 0.05 in bold. Welch's t test does not assume equal variances; Mann-Whitney U compares ranks (exact for small groups without ties).")];
}
