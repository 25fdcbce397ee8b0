// Key completion for the filter box: after `metrics.`, `params.` or `tags.` (or their
// aliases), suggest the keys the chosen experiments have, asked from the server lazily.
import { api } from "./api.js";
import { h, debounce, quoteKey } from "./util.js";

const ENTITY = { metrics: "metrics", metric: "metrics", params: "params", param: "params",
  parameters: "params", parameter: "params", tags: "tags", tag: "tags" };
// The entity and the partial key just before the caret.
const TOKEN = /(?:^|[\s(,])(metrics|metric|params|param|parameters|parameter|tags|tag)\.([A-Za-z0-9_\-/:.]*)$/i;

export function attachCompletion(input, experiments, onAccept) {
  const list = h("ul", { class: "completions", role: "listbox", hidden: true });
  input.after(list);
  let items = [];
  let active = 0;
  let token = null;

  function close() {
    list.hidden = true;
    items = [];
  }

  function render() {
    list.replaceChildren(...items.map((k, i) => h("li", { role: "option", class: i === active ? "active" : "",
      "aria-selected": String(i === active), onmousedown: (e) => { e.preventDefault(); accept(i); } }, k)));
    list.hidden = !items.length;
  }

  function accept(i) {
    const key = items[i];
    const caret = input.selectionStart;
    const before = input.value.slice(0, caret - token.partial.length);
    const after = input.value.slice(caret);
    const text = quoteKey(key) + " ";
    input.value = before + text + after;
    const pos = before.length + text.length;
    input.setSelectionRange(pos, pos);
    close();
    onAccept();
  }

  const suggest = debounce(async () => {
    const m = input.value.slice(0, input.selectionStart).match(TOKEN);
    if (!m) { close(); return; }
    token = { kind: ENTITY[m[1].toLowerCase()], partial: m[2] };
    const asked = input.value;
    const res = await api("/ui/keys", { query: { kind: token.kind, contains: token.partial, limit: 20,
      experiment_ids: experiments() || undefined } });
    if (input.value !== asked) return;  // typed on meanwhile: a newer request follows
    items = res.keys.filter((k) => k !== token.partial);
    active = 0;
    render();
  }, 120);

  input.addEventListener("input", suggest);
  input.addEventListener("blur", () => setTimeout(close, 100));
  input.addEventListener("keydown", (e) => {
    if (list.hidden) return;
    if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      active = (active + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
      render();
    } else if (e.key === "Tab" || e.key === "Enter") {
      e.preventDefault();
      e.stopImmediatePropagation();
      accept(active);
    } else if (e.key === "Escape") {
      close();
    }
  });
}
