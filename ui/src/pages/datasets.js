// Data sets: versions with their summaries, a version's files and statistics.
import { api } from "../api.js";
import { h, clear, fmtTime, errorBox } from "../util.js";

export function datasetsPage(root) {
  const box = h("div", {});
  clear(root, h("h1", {}, "Data sets"), box);
  api("/datasets").then((res) => {
    const list = res.datasets || res;
    if (!list.length) { clear(box, h("p", { class: "muted" }, "No data sets yet.")); return; }
    clear(box, h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ["data set", "versions", "latest", "updated"].map((t) => h("th", {}, t)))),
      h("tbody", {}, list.map((d) => h("tr", {},
        h("td", {}, h("a", { href: `/datasets/${encodeURIComponent(d.name)}` }, d.name)),
        h("td", {}, d.versions ?? d.version_count ?? ""), h("td", {}, d.latest ?? d.latest_version ?? ""),
        h("td", {}, fmtTime(d.updated_at ?? d.created_at)))))));
  }).catch((err) => clear(box, errorBox(err)));
  return null;
}

export function datasetPage(root, [name]) {
  const enc = encodeURIComponent(name);
  const versionsBox = h("div", {});
  const detail = h("div", {});
  clear(root, h("h1", {}, name), h("h2", {}, "Versions"), versionsBox, detail);

  async function show(v) {
    clear(detail, h("p", { class: "muted" }, "loading…"));
    try {
      const [files, stats] = await Promise.all([
        api(`/datasets/${enc}/versions/${v.version}/files`),
        api(`/datasets/${enc}/versions/${v.version}/stats`)]);
      const list = files.files || files;
      clear(detail, h("h2", {}, `Version ${v.version}`),
        h("a", { href: `/lineage?node=${encodeURIComponent(`dataset:${name}@${v.version}`)}` }, "lineage graph"),
        h("h3", {}, `Files (${list.length})`),
        h("table", { class: "grid files" }, h("tbody", {}, list.slice(0, 500).map((f) => h("tr", {}, h("td", {}, h("code", {}, f.path)), h("td", { class: "num" }, f.size))))),
        h("h3", {}, "Statistics"), h("pre", { class: "preview-text" }, JSON.stringify(stats, null, 2)));
    } catch (err) {
      clear(detail, errorBox(err));
    }
  }

  api(`/datasets/${enc}/versions`).then((res) => {
    const versions = res.versions || res;
    clear(versionsBox, h("table", { class: "grid" },
      h("thead", {}, h("tr", {}, ["version", "files", "size", "created", "message"].map((t) => h("th", {}, t)))),
      h("tbody", {}, [...versions].reverse().map((v) => h("tr", {},
        h("td", {}, h("a", { href: "#", onclick: (e) => { e.preventDefault(); show(v); } }, String(v.version))),
        h("td", { class: "num" }, v.file_count ?? v.files ?? ""), h("td", { class: "num" }, v.size ?? v.total_size ?? ""),
        h("td", {}, fmtTime(v.created_at)), h("td", {}, v.message || v.description || ""))))));
    if (versions.length) show(versions[versions.length - 1]);
  }).catch((err) => clear(versionsBox, errorBox(err)));
  return null;
}
