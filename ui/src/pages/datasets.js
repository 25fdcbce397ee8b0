// Data sets: versions, a version's file tree and statistics, and the diff of two versions.
import { api } from "../api.js";
import { h, clear, fmtTime, errorBox, shortId } from "../util.js";
import { commentsPanel } from "../comments.js";
import { askDelete } from "../trash.js";

function bytes(n) {
  if (n === null || n === undefined) return "";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let x = n;
  while (x >= 1024 && i < units.length - 1) { x /= 1024; i++; }
  return `${i ? x.toFixed(1) : x} ${units[i]}`;
}

export function datasetsPage(root) {
  const box = h("div", {});
  clear(root, h("h1", {}, "Data sets"), box);
  api("/datasets").then((list) => {
    if (!list.length) { clear(box, h("p", { class: "muted" }, "No data sets yet. Version one with cairn.data.add(path, name=...) or `cairn data add`.")); return; }
    clear(box, h("table", { class: "grid datasets" },
      h("thead", {}, h("tr", {}, ["data set", "versions", "latest", "files", "size", "aliases", "updated"].map((t) => h("th", {}, t)))),
      h("tbody", {}, list.map((d) => h("tr", {},
        h("td", {}, h("a", { href: `/datasets/${encodeURIComponent(d.name)}` }, d.name)),
        h("td", { class: "num" }, d.versions), h("td", { class: "num" }, d.latest),
        h("td", { class: "num" }, d.files), h("td", { class: "num" }, bytes(d.size)),
        h("td", {}, Object.entries(d.aliases || {}).map(([a, v]) => h("span", { class: "alias" }, `@${a} → ${v}`))),
        h("td", {}, fmtTime(d.updated_at)))))));
  }).catch((err) => clear(box, errorBox(err)));
  return null;
}

/** A tree of paths, folders first, as nested lists (folders open by default). */
function fileTree(files) {
  const root = { dirs: new Map(), files: [] };
  for (const f of files) {
    const parts = f.path.split("/");
    let node = root;
    for (const p of parts.slice(0, -1)) {
      if (!node.dirs.has(p)) node.dirs.set(p, { dirs: new Map(), files: [] });
      node = node.dirs.get(p);
    }
    node.files.push({ name: parts[parts.length - 1], ...f });
  }
  const render = (node) => h("ul", { class: "tree" },
    [...node.dirs.entries()].sort().map(([name, child]) => h("li", {}, h("details", { open: true }, h("summary", {}, `${name}/`), render(child)))),
    node.files.map((f) => h("li", {}, h("code", {}, f.name), h("span", { class: "muted" }, ` ${bytes(f.size)} · ${f.digest.slice(0, 10)}`))));
  return render(root);
}

function diffView(d) {
  const rows = [
    ...d.added.map((c) => ["added", c.path, bytes(c.new_size)]),
    ...d.removed.map((c) => ["removed", c.path, bytes(c.old_size)]),
    ...d.changed.map((c) => ["changed", c.path, `${bytes(c.old_size)} → ${bytes(c.new_size)}`]),
    ...d.moved.map(([a, b]) => ["moved", `${a} → ${b}`, ""]),
  ];
  return h("div", { class: "diff-box" },
    h("p", {}, `${d.a} → ${d.b}: ${d.added.length} added, ${d.removed.length} removed, ${d.changed.length} changed, ${d.moved.length} moved, ${d.unchanged} unchanged`),
    rows.length ? h("table", { class: "grid data-diff" }, h("tbody", {}, rows.map(([kind, path, size]) => h("tr", { class: `ch-${kind}` }, h("td", {}, kind), h("td", {}, h("code", {}, path)), h("td", { class: "num" }, size))))) : null,
    Object.keys(d.tables || {}).length ? h("pre", { class: "preview-text" }, JSON.stringify(d.tables, null, 2)) : null);
}

export function datasetPage(root, [name], params, navigate) {
  const enc = encodeURIComponent(name);
  const versionsBox = h("div", {});
  const diffBox = h("div", {});
  const detail = h("div", {});
  const message = h("div", { role: "status" });
  clear(root, h("h1", {}, name), message, h("h2", {}, "Versions"), versionsBox, diffBox, detail);

  // Delete: the page knows which versions are protected (inputs of registered model
  // versions) and says why instead of sending a delete the server refuses; a server admin
  // may force it, confirmed twice.
  function deleteButton(v, can, protectedBy) {
    const ref = `${name}@${v.version}`;
    const btn = h("button", { type: "button", class: "danger", "aria-label": `delete version ${v.version}`, onclick: async () => {
      try {
        const done = await askDelete("dataset_version", [{ dataset: name, version: v.version, name: ref }],
          { what: `data set version ${ref}`, protectedBy, canForce: can.force });
        if (!done) return;
        clear(message, h("div", { class: "ok" }, `${ref} deleted: it is in the `, h("a", { href: "/trash" }, "Trash"), "."));
        draw();
      } catch (err) {
        clear(message, errorBox(err));
      }
    } }, "Delete");
    if (!can.delete) {
      btn.disabled = true;
      btn.title = "needs the editor role on some experiment or model";
    }
    return btn;
  }

  async function show(version) {
    clear(detail, h("p", { class: "muted" }, "loading…"));
    try {
      const [files, stats] = await Promise.all([
        api(`/datasets/${enc}/versions/${version}/files`, { query: { limit: 1000 } }),
        api(`/datasets/${enc}/versions/${version}/stats`)]);
      clear(detail, h("h2", {}, `${name}@${version}`),
        h("a", { href: `/lineage?node=${encodeURIComponent(`dataset:${name}@${version}`)}` }, "lineage graph"),
        h("h3", {}, `Files (${files.total})`), fileTree(files.files),
        files.next_offset !== null ? h("p", { class: "muted" }, `first ${files.files.length} of ${files.total} files`) : null,
        h("h3", {}, "Statistics"),
        Object.keys(stats.stats).length ? statsTables(stats.stats) : h("p", { class: "muted" }, "No table statistics."),
        stats.quality.length ? h("div", {}, h("h3", {}, "Quality checks"), h("ul", { class: "quality" }, stats.quality.map((q) => h("li", { class: q.passed ? "passed" : "failed" },
          `${q.passed ? "✓" : "✗"} ${q.expectation}`, h("span", { class: "muted" }, ` — ${q.file ? q.file + ": " : ""}${q.detail || ""}`))))) : null,
        commentsPanel("dataset_version", `${name}@${version}`));
    } catch (err) {
      clear(detail, errorBox(err));
    }
  }

  function statsTables(stats) {
    const num4 = (v) => (typeof v === "number" && !Number.isInteger(v) ? +v.toPrecision(4) : v ?? "");
    return Object.entries(stats).map(([path, s]) => h("div", { class: "table-stats" },
      h("h4", {}, h("code", {}, path), ` · ${s.format || "table"} · ${s.rows ?? "?"} rows · ${s.duplicate_rows ?? 0} duplicate rows`),
      s.columns_stats ? h("table", { class: "grid stats" },
        h("thead", {}, h("tr", {}, ["column", "type", "nulls", "distinct", "min", "max", "mean", "std"].map((t) => h("th", {}, t)))),
        h("tbody", {}, Object.entries(s.columns_stats).slice(0, 200).map(([col, c]) => h("tr", {},
          h("td", {}, col), h("td", {}, c.type ?? ""),
          h("td", { class: "num" }, c.nulls === undefined ? "" : `${c.nulls} (${(100 * (c.null_fraction || 0)).toFixed(0)}%)`),
          h("td", { class: "num" }, c.distinct ?? ""), h("td", { class: "num" }, num4(c.min)),
          h("td", { class: "num" }, num4(c.max)), h("td", { class: "num" }, num4(c.mean)),
          h("td", { class: "num" }, num4(c.std))))))
        : h("pre", { class: "preview-text" }, JSON.stringify(s, null, 2))));
  }

  // A mistyped name is an answer (200, versions null), not a 404 the browser logs.
  const draw = () => api(`/ui/datasets/${enc}`).then(({ versions, message: missing, can, protected: guarded }) => {
    if (!versions) {
      clear(root, h("h1", {}, "Data set not found"), errorBox(missing), h("a", { href: "/datasets" }, "All data sets"));
      return;
    }
    can = can || { delete: false, force: false };
    guarded = guarded || {};
    const a = h("select", { "aria-label": "diff from" }, versions.map((v) => h("option", { value: v.version }, `@${v.version}`)));
    const b = h("select", { "aria-label": "diff to" }, versions.map((v) => h("option", { value: v.version }, `@${v.version}`)));
    if (versions.length > 1) { a.value = versions[versions.length - 2].version; b.value = versions[versions.length - 1].version; }
    const diffOut = h("div", {});
    const go = h("button", { onclick: async () => {
      try {
        clear(diffOut, diffView(await api("/datasets/diff", { query: { a: `${name}@${a.value}`, b: `${name}@${b.value}` } })));
      } catch (err) { clear(diffOut, errorBox(err)); }
    } }, "Diff");
    clear(diffBox, versions.length > 1 ? h("div", {}, h("h2", {}, "Diff"), h("div", { class: "toolbar" }, a, "→", b, go), diffOut) : null);
    clear(versionsBox, h("table", { class: "grid versions" },
      h("thead", {}, h("tr", {}, ["version", "kind", "files", "size", "aliases", "made by run", "created", "message", ""].map((t) => h("th", {}, t)))),
      h("tbody", {}, [...versions].reverse().map((v) => h("tr", { "data-version": v.version },
        h("td", {}, h("a", { href: `/datasets/${enc}?version=${v.version}` }, `@${v.version}`)),
        h("td", {}, v.kind), h("td", { class: "num" }, v.files), h("td", { class: "num" }, bytes(v.size)),
        h("td", {}, (v.aliases || []).map((x) => h("span", { class: "alias" }, `@${x}`))),
        h("td", {}, v.run_id ? h("a", { href: `/runs/${v.run_id}` }, shortId(v.run_id)) : ""),
        h("td", {}, fmtTime(v.created_at), h("div", { class: "muted" }, v.created_by)),
        h("td", {}, v.message),
        h("td", { class: "actions" }, deleteButton(v, can, guarded[String(v.version)] || null)))))));
    const chosen = params.get("version") || (versions.length ? versions[versions.length - 1].version : null);
    const known = (sel) => sel === "latest" || versions.some((v) => String(v.version) === String(sel).replace(/^v/, "") || (v.aliases || []).includes(sel));
    if (chosen !== null && !known(chosen)) clear(detail, errorBox(`${name} has no version ${chosen}.`));
    else if (chosen !== null) show(chosen);
  }).catch((err) => clear(versionsBox, errorBox(err)));
  draw();
  void navigate;
  return null;
}
