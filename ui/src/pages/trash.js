// The Trash: deleted experiments, runs, model versions and data set versions, newest deletion
// first, each with Restore where the user may restore it (GET /ui/trash says).
import { api } from "../api.js";
import { ROUTES } from "../trash.js";
import { h, clear, fmtTime, errorBox } from "../util.js";

const KIND_NAMES = { experiment: "experiment", run: "run", model_version: "model version", dataset_version: "data set version" };

export function trashPage(root, _args, params) {
  const kindSel = h("select", { "aria-label": "kind" }, h("option", { value: "" }, "everything"),
    Object.entries(KIND_NAMES).map(([k, label]) => h("option", { value: k }, `${label}s`)));
  kindSel.value = params.get("kind") || "";
  const message = h("div", { role: "status" });
  const box = h("div", {});
  clear(root, h("div", { class: "page-head" }, h("h1", {}, "Trash")),
    h("p", { class: "muted" }, "Deleted items are kept here until the trash is emptied (`cairn gc`, after CAIRN_TRASH_DAYS days); Restore brings one back as it was."),
    h("div", { class: "toolbar" }, h("label", {}, "Show ", kindSel)), message, box);

  kindSel.addEventListener("change", () => {
    history.replaceState(null, "", kindSel.value ? `/trash?kind=${kindSel.value}` : "/trash");
    clear(message);
    load();
  });

  function row(it) {
    const r = ROUTES[it.kind];
    const restore = h("button", { type: "button", "aria-label": `restore ${KIND_NAMES[it.kind]} ${it.name}`, onclick: async () => {
      restore.disabled = true;
      try {
        await r.restore(it);
        clear(message, h("div", { class: "ok" }, `Restored ${KIND_NAMES[it.kind]} `, h("a", { href: r.href(it) }, it.name), "."));
      } catch (err) {
        clear(message, errorBox(err));
      }
      await load();
    } }, "Restore");
    if (!it.can || !it.can.restore) {
      restore.disabled = true;
      restore.title = "your roles do not allow restoring this";
    }
    return h("tr", { "data-kind": it.kind, "data-id": it.id },
      h("td", {}, KIND_NAMES[it.kind] || it.kind),
      h("td", {}, it.name, it.experiment ? h("span", { class: "muted" }, ` in ${it.experiment}`) : null),
      h("td", {}, it.deleted_at ? fmtTime(it.deleted_at) : "—"),
      h("td", {}, it.deleted_by || "—"),
      h("td", { class: "actions" }, restore));
  }

  async function load() {
    try {
      const res = await api("/ui/trash", { query: { kind: kindSel.value || undefined } });
      if (!res.items.length) {
        clear(box, h("p", { class: "muted empty-trash" }, "The trash is empty."));
        return;
      }
      clear(box, h("table", { class: "grid trash" },
        h("thead", {}, h("tr", {}, ["kind", "name", "deleted at", "by", ""].map((t) => h("th", { scope: "col" }, t)))),
        h("tbody", {}, res.items.map(row))),
      res.truncated ? h("p", { class: "muted" }, `the ${res.items.length} most recently deleted items`) : null);
    } catch (err) {
      clear(box, errorBox(err));
    }
  }
  load();
  return null;
}
