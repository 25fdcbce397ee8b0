// Delete and restore: the confirmation dialogs and the native routes they call, shared by the
// runs table, the run, model and data set pages and the Trash page.
import { api } from "./api.js";
import { h } from "./util.js";

/**
 * A modal <dialog> (focus stays inside it, Escape cancels) that resolves to true when the
 * user confirms. `body` is a node or text; `confirm` the label of the button that acts.
 */
export function confirmDialog({ title, body, confirm = "Delete", danger = true, cancel = "Cancel" }) {
  return new Promise((resolve) => {
    const id = `dlg-${Math.random().toString(36).slice(2)}`;
    const ok = h("button", { type: "button", class: danger ? "danger" : "primary" }, confirm);
    const no = h("button", { type: "button" }, cancel);
    const dialog = h("dialog", { class: "confirm", "aria-labelledby": `${id}-title`, "aria-describedby": `${id}-body` },
      h("h2", { id: `${id}-title` }, title),
      h("div", { id: `${id}-body`, class: "confirm-body" }, body),
      h("div", { class: "toolbar confirm-buttons" }, no, ok));
    let answer = false;
    ok.addEventListener("click", () => { answer = true; dialog.close(); });
    no.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => { dialog.remove(); resolve(answer); });
    document.body.append(dialog);
    dialog.showModal();
    no.focus();  // the safe answer is the default one: Enter on an untouched dialog cancels
  });
}

/** A dialog that only informs (a refusal): one button. */
export function noticeDialog({ title, body }) {
  return confirmDialog({ title, body, confirm: "OK", danger: false, cancel: "Close" }).then(() => false);
}

const enc = encodeURIComponent;

/** The native routes, by kind (as `kind` in GET /ui/trash). */
export const ROUTES = {
  run: {
    del: (it) => api(`/runs/${enc(it.id)}/delete`, { method: "POST" }),
    restore: (it) => api(`/runs/${enc(it.id)}/restore`, { method: "POST" }),
    href: (it) => `/runs/${enc(it.id)}`,
    label: "run",
  },
  experiment: {
    del: (it) => api(`/experiments/${enc(it.id)}/delete`, { method: "POST" }),
    restore: (it) => api(`/experiments/${enc(it.id)}/restore`, { method: "POST" }),
    href: (it) => `/?experiments=${enc(it.id)}`,
    label: "experiment",
  },
  model_version: {
    del: (it, force = false) => api(`/models/${enc(it.model)}/versions/${enc(it.version)}`,
      { method: "DELETE", query: { force: force ? "true" : undefined } }),
    restore: (it) => api(`/models/${enc(it.model)}/versions/${enc(it.version)}/restore`, { method: "POST" }),
    href: (it) => `/models/${enc(it.model)}`,
    label: "model version",
  },
  dataset_version: {
    del: (it, force = false) => api(`/datasets/${enc(it.dataset)}/versions/${enc(it.version)}/delete`,
      { method: "POST", query: { force: force ? "true" : undefined } }),
    restore: (it) => api(`/datasets/${enc(it.dataset)}/versions/${enc(it.version)}/restore`, { method: "POST" }),
    href: (it) => `/datasets/${enc(it.dataset)}`,
    label: "data set version",
  },
};

const TRASH_NOTE = "It goes to the trash: hidden everywhere, kept, and restorable from the Trash page until the trash is emptied.";

/**
 * Ask, then delete one item (or several of one kind). `protectedBy` (reasons) turns the
 * first dialog into the refusal the server would give; with `canForce` it offers a forced
 * delete behind a second confirmation. Resolves to true when something was deleted.
 */
export async function askDelete(kind, items, { what, protectedBy = null, canForce = false } = {}) {
  const r = ROUTES[kind];
  const many = items.length > 1;
  const name = what || (many ? `${items.length} ${r.label}s` : `${r.label} ${items[0].name}`);
  if (protectedBy && protectedBy.length) {
    const reasons = h("ul", { class: "reasons-list" }, protectedBy.map((x) => h("li", {}, x)));
    if (!canForce) {
      await noticeDialog({ title: `${name} is protected`, body: [
        h("p", {}, "It cannot be deleted:"), reasons,
        h("p", { class: "muted" }, "Only an admin may force the deletion.")] });
      return false;
    }
    const first = await confirmDialog({ title: `${name} is protected`, confirm: "Delete anyway…",
      body: [h("p", {}, "A delete is refused without force:"), reasons,
        h("p", { class: "muted" }, "As an admin you may force it; the forced deletion is audited.")] });
    if (!first) return false;
    const second = await confirmDialog({ title: `Force the deletion of ${name}?`, confirm: "Force delete",
      body: [h("p", {}, `${name} is protected (${protectedBy.join("; ")}). Forcing removes its aliases; a restore does not give them back.`),
        h("p", {}, TRASH_NOTE)] });
    if (!second) return false;
    for (const it of items) await r.del(it, true);
    return true;
  }
  const extra = kind === "experiment" ? " Its runs go with it, and come back with it." : "";
  const yes = await confirmDialog({ title: `Delete ${name}?`, confirm: "Delete",
    body: h("p", {}, TRASH_NOTE + extra) });
  if (!yes) return false;
  for (const it of items) await r.del(it);
  return true;
}
