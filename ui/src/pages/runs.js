// The runs table: experiments picker, filter box, sortable and chosen columns,
// virtualised rows, selection -> compare.  Its state lives in the URL.
import { api } from "../api.js";
import { VirtualTable } from "../vtable.js";
import { attachCompletion } from "../autocomplete.js";
import { h, clear, fmtTime, fmtDuration, fmtValue, statusBadge, debounce, quoteKey, errorBox } from "../util.js";
import { commentsPanel } from "../comments.js";
import { askDelete, ROUTES } from "../trash.js";

const ATTRS = {
  name: "attributes.run_name", status: "attributes.status", start: "attributes.start_time",
  user: "attributes.user",
};

function orderBy(sort) {
  if (!sort) return [];
  const [kind, ...rest] = sort.id.split(".");
  const ident = ATTRS[sort.id] || `${kind}.${quoteKey(rest.join("."))}`;
  return [`${ident} ${sort.dir}`];
}

function parseSort(text) {
  if (!text) return null;
  const i = text.lastIndexOf(":");
  return { id: text.slice(0, i), dir: text.slice(i + 1) === "ASC" ? "ASC" : "DESC" };
}

export function runsPage(root, _args, params, navigate) {
  const state = {
    experiments: params.get("experiments") ? params.get("experiments").split(",") : null,
    filter: params.get("filter") || "",
    sort: parseSort(params.get("sort")),
    columns: params.get("columns") !== null ? params.get("columns").split(",").filter(Boolean) : null,
    group: params.get("group") || "",
    view: params.get("view") || null,  // the saved view this state came from (until changed)
    deleted: params.get("deleted") === "1",  // *show deleted*: the runs in the trash instead
    selected: new Map(),  // run id -> its row
  };
  let allExperiments = [];

  function syncUrl(keepView = false) {
    if (!keepView) state.view = null;
    const q = new URLSearchParams();
    if (state.experiments) q.set("experiments", state.experiments.join(","));
    if (state.filter) q.set("filter", state.filter);
    if (state.sort) q.set("sort", `${state.sort.id}:${state.sort.dir}`);
    if (state.columns) q.set("columns", state.columns.join(","));
    if (state.group) q.set("group", state.group);
    if (state.view) q.set("view", state.view);
    if (state.deleted) q.set("deleted", "1");
    const s = q.toString();
    history.replaceState(null, "", s ? `/?${s}` : "/");
  }

  const expButton = h("button", { class: "picker-button", "aria-haspopup": "true" }, "All experiments");
  const expMenu = h("div", { class: "menu", hidden: true });
  expButton.addEventListener("click", () => { expMenu.hidden = !expMenu.hidden; });
  const filterInput = h("input", { class: "filter", type: "search", value: state.filter,
    placeholder: "Filter: metrics.accuracy > 0.9 AND params.model = 'cnn'", spellcheck: false,
    "aria-label": "filter" });
  const filterError = h("div", { class: "filter-error", role: "status" });
  const compareBtn = h("button", { class: "primary", disabled: true }, "Compare");
  const colsButton = h("button", {}, "Columns");
  const groupSel = h("select", { "aria-label": "group by", onchange: () => {
    state.group = groupSel.value;
    syncUrl();
    reload();
  } }, h("option", { value: "" }, "no grouping"));
  const chooser = h("div", { class: "menu chooser", hidden: true });
  colsButton.addEventListener("click", () => {
    chooser.hidden = !chooser.hidden;
    if (!chooser.hidden) loadChooser();
  });
  compareBtn.addEventListener("click", () => navigate(`/compare?runs=${[...state.selected.keys()].join(",")}`));
  // Delete (or, showing deleted runs, restore) the ticked runs: offered only where the user's
  // roles allow it on every ticked run's experiment (GET /ui/experiments says which).
  const trashBtn = h("button", { class: "danger", disabled: true, onclick: () => trashSelected() }, "Delete");
  const deletedBox = h("input", { type: "checkbox", checked: state.deleted, onchange: () => {
    state.deleted = deletedBox.checked;
    state.selected.clear();
    updateSelection();
    syncUrl(true);
    reload();
  } });
  const deletedLabel = h("label", { class: "show-deleted", title: "the runs in the trash, to restore them" }, deletedBox, " show deleted");
  const expDelete = h("button", { class: "danger", hidden: true, onclick: () => deleteExperiment() }, "Delete experiment");
  const message = h("div", { role: "status" });
  const tableBox = h("div", { class: "vt" });
  const errBox = h("div");
  const viewsBox = h("div", { class: "views-box" });
  const expComments = h("div", { class: "experiment-comments" });

  clear(root,
    h("div", { class: "toolbar" },
      h("div", { class: "picker" }, expButton, expMenu),
      h("div", { class: "filter-box" }, filterInput, filterError),
      h("div", { class: "picker" }, colsButton, chooser),
      groupSel,
      compareBtn,
      trashBtn,
      deletedLabel,
      expDelete,
      viewsBox),
    message, errBox, tableBox, expComments);

  const expById = (id) => allExperiments.find((e) => e.id === id);
  function mayTrash(row) {
    const exp = expById(row.experiment_id);
    return !!(exp && exp.can && exp.can.delete_runs);
  }

  function updateSelection() {
    const n = state.selected.size;
    compareBtn.disabled = n < 2 || state.deleted;
    compareBtn.textContent = `Compare${n ? ` (${n})` : ""}`;
    const verb = state.deleted ? "Restore" : "Delete";
    trashBtn.className = state.deleted ? "" : "danger";
    trashBtn.textContent = `${verb}${n ? ` (${n})` : ""}`;
    const allowed = [...state.selected.values()].every(mayTrash);
    trashBtn.disabled = !n || !allowed;
    if (n && !allowed) trashBtn.title = `your roles do not allow ${verb.toLowerCase()}ing some of the ticked runs (it needs the editor role on their experiment)`;
    else trashBtn.removeAttribute("title");
  }

  async function trashSelected() {
    const rows = [...state.selected.values()];
    clear(message);
    try {
      if (state.deleted) {
        for (const r of rows) await ROUTES.run.restore(r);
        clear(message, h("div", { class: "ok" }, `Restored ${rows.length === 1 ? `run ${rows[0].name}` : `${rows.length} runs`}.`));
      } else {
        if (!(await askDelete("run", rows))) return;
        clear(message, h("div", { class: "ok" }, `Deleted ${rows.length === 1 ? `run ${rows[0].name}` : `${rows.length} runs`}: they are in the `,
          h("a", { href: "/trash" }, "Trash"), "."));
      }
    } catch (err) {
      clear(message, errorBox(err));
    }
    state.selected.clear();
    updateSelection();
    reload();
  }

  async function deleteExperiment() {
    const exp = expById(oneExperiment());
    if (!exp) return;
    clear(message);
    try {
      if (!(await askDelete("experiment", [exp]))) return;
      clear(message, h("div", { class: "ok" }, `Deleted experiment ${exp.name} and its runs: they are in the `, h("a", { href: "/trash" }, "Trash"), "."));
      allExperiments = allExperiments.filter((e) => e.id !== exp.id);
      state.experiments = null;
      changed();
    } catch (err) {
      clear(message, errorBox(err));
    }
  }

  function renderExpDelete() {
    const exp = expById(oneExperiment());
    expDelete.hidden = !exp;
    if (!exp) return;
    expDelete.setAttribute("aria-label", `delete experiment ${exp.name}`);
    expDelete.disabled = !exp.can.delete;
    if (exp.can.delete) expDelete.removeAttribute("title");
    else expDelete.title = `needs the admin role on experiment ${exp.name}`;
  }

  function selectCell(row) {
    const box = h("input", { type: "checkbox", checked: state.selected.has(row.id),
      "aria-label": `select ${row.name}` });
    box.addEventListener("change", () => {
      if (box.checked) state.selected.set(row.id, row);
      else state.selected.delete(row.id);
      updateSelection();
    });
    return box;
  }

  function columns() {
    const base = [
      { id: "select", label: "", width: 34, cell: (r) => (r ? selectCell(r) : "") },
      { id: "name", label: "Run", width: 200, sortable: true,
        cell: (r) => (r ? h("a", { href: `/runs/${r.id}` }, r.name) : "…") },
      { id: "status", label: "Status", width: 96, sortable: true, cell: (r) => (r ? statusBadge(r.status) : "") },
      { id: "start", label: "Started", width: 150, sortable: true, cell: (r) => (r ? fmtTime(r.start_time) : "") },
      { id: "duration", label: "Duration", width: 80,
        cell: (r) => (r ? fmtDuration((r.end_time || Date.now()) - r.start_time) : "") },
      { id: "user", label: "User", width: 90, sortable: true, cell: (r) => (r ? r.user : "") },
    ];
    if (state.group) {  // the group's value first; rows are ordered by it (server-side)
      base.splice(1, 0, { id: `params.${state.group}`, label: state.group, width: 110,
        header: () => h("span", {}, h("small", { class: "kind" }, "group"), " ", state.group),
        cell: (r) => (r ? fmtValue(r.cells[0]) : "") });
    }
    const shift = state.group ? 1 : 0;
    if (!state.experiments || state.experiments.length > 1) {
      base.push({ id: "experiment", label: "Experiment", width: 120, cell: (r) => (r ? r.experiment : "") });
    }
    (state.columns || []).forEach((col, i) => {
      const [kind, ...rest] = col.split(".");
      base.push({ id: col, label: rest.join("."), title: col, width: 120, sortable: true,
        numeric: kind === "metrics", header: () => h("span", {}, h("small", { class: "kind" }, kind[0]), " ", rest.join(".")),
        cell: (r) => (r ? fmtValue(r.cells[i + shift]) : "") });
    });
    return base;
  }

  const table = new VirtualTable(tableBox, {
    columns: columns(),
    sort: state.sort,
    onSort: (sort) => {
      state.sort = sort;
      table.sort = sort;
      table.renderHeader();
      syncUrl();
      reload();
    },
    // With a group, rows arrive ordered by it, then by the chosen sort within each group.
    fetchPage: (offset) => api("/ui/runs", { method: "POST", body: {
      experiment_ids: state.experiments, filter: state.filter,
      order_by: state.group ? [`params.${quoteKey(state.group)}`, ...orderBy(state.sort)] : orderBy(state.sort),
      columns: [...(state.group ? [`params.${state.group}`] : []), ...(state.columns || [])],
      offset, limit: 500, lifecycle: state.deleted ? "deleted" : "active" } }),
    rowClass: (row, i, rows) => (state.group && row && (i === 0 || !rows[i - 1] ||
      rows[i - 1].cells[0] !== row.cells[0]) ? "group-start" : ""),
  });

  function reload() {
    clear(errBox);
    table.setColumns(columns());
    table.reset().catch((err) => clear(errBox, errorBox(err)));
  }

  // The filter is checked as it is typed; errors show under the box, not as failed requests.
  const check = debounce(async () => {
    const text = filterInput.value.trim();
    const res = await api("/ui/check-filter", { query: { filter: text } });
    filterInput.classList.toggle("invalid", !res.ok);
    filterError.textContent = res.ok ? "" : res.message;
    if (res.ok && text !== state.filter) {
      state.filter = text;
      syncUrl();
      reload();
    }
  }, 350);
  attachCompletion(filterInput, () => state.experiments, check);
  filterInput.addEventListener("input", check);
  filterInput.addEventListener("keydown", (e) => { if (e.key === "Enter") check(); });

  function renderExpMenu() {
    const chosen = new Set(state.experiments || []);
    expButton.textContent = !state.experiments ? "All experiments"
      : state.experiments.map((id) => (allExperiments.find((e) => e.id === id) || { name: id }).name).join(", ");
    clear(expMenu,
      h("label", { class: "menu-item" }, h("input", { type: "checkbox", checked: !state.experiments,
        onchange: (e) => { if (e.target.checked) { state.experiments = null; changed(); } } }), " All experiments"),
      allExperiments.map((exp) => h("label", { class: "menu-item" },
        h("input", { type: "checkbox", checked: chosen.has(exp.id), onchange: (e) => {
          const set = new Set(state.experiments || []);
          if (e.target.checked) set.add(exp.id); else set.delete(exp.id);
          state.experiments = set.size ? [...set] : null;
          changed();
        } }), " ", exp.name)));
  }

  function changed() {
    renderExpMenu();
    renderExpDelete();
    syncUrl();
    reload();
    renderViews();
    renderExpComments();
  }

  // -- saved views: one experiment's named table states, opened by URL ----------------
  const oneExperiment = () => (state.experiments && state.experiments.length === 1 ? state.experiments[0] : null);
  const viewUrl = (exp, name) => `/?${new URLSearchParams({ experiments: exp, view: name })}`;

  function stateOfTable() {
    return { filter: state.filter, columns: state.columns || [], group: state.group, sort: state.sort, charts: [] };
  }

  function applyView(v) {
    const s = v.state;
    state.filter = s.filter || "";
    filterInput.value = state.filter;
    filterInput.classList.remove("invalid");
    filterError.textContent = "";
    state.sort = s.sort || null;
    table.sort = state.sort;
    state.columns = s.columns || [];
    state.group = s.group || "";
    if (state.group && ![...groupSel.options].some((o) => o.value === state.group)) {
      groupSel.append(h("option", { value: state.group }, `group by ${state.group}`));
    }
    groupSel.value = state.group;
    state.view = v.name;
  }

  async function renderViews() {
    const exp = oneExperiment();
    if (!exp) {
      clear(viewsBox, h("span", { class: "muted small" }, "choose one experiment to save views"));
      return;
    }
    const status = h("span", { role: "status" });
    const pick = h("select", { "aria-label": "saved views" }, h("option", { value: "" }, "saved views…"));
    const name = h("input", { type: "text", placeholder: "view name", "aria-label": "view name", size: 14 });
    const save = h("button", {}, "Save view");
    const del = h("button", { class: "danger", disabled: !state.view }, "Delete view");
    const share = state.view ? h("a", { class: "share-link", href: viewUrl(exp, state.view), title: "a link that opens this view" }, "link") : null;
    clear(viewsBox, pick, name, save, del, share, status);
    let views = [];
    let can = { save: false, manage: false };
    let user = null;
    try {
      ({ views, can, user } = await api(`/experiments/${encodeURIComponent(exp)}/views`));
    } catch (err) {
      clear(status, errorBox(err));
      return;
    }
    // Offer only what the server would accept (saving needs the editor role; replacing or
    // deleting another user's view, admin on the experiment).
    const mine = (n) => { const v = views.find((x) => x.name === n); return !v || can.manage || v.created_by === user; };
    if (!can.save) {
      for (const b of [save, name]) { b.disabled = true; b.title = "needs the editor role on this experiment"; }
    }
    del.disabled = !state.view || !can.save || !mine(state.view);
    pick.append(...views.map((v) => h("option", { value: v.name }, v.name)));
    pick.value = state.view && views.some((v) => v.name === state.view) ? state.view : "";
    name.value = state.view || "";
    pick.addEventListener("change", () => {
      const v = views.find((x) => x.name === pick.value);
      if (!v) return;
      applyView(v);
      syncUrl(true);
      reload();
      renderViews();
    });
    save.addEventListener("click", async () => {
      const n = name.value.trim();
      if (!n) { clear(status, "Name the view first."); return; }
      if (!mine(n)) { clear(status, `"${n}" is another user's view: save under another name.`); return; }
      try {
        await api(`/experiments/${encodeURIComponent(exp)}/views/${encodeURIComponent(n)}`,
          { method: "PUT", body: { state: stateOfTable() } });
        state.view = n;
        syncUrl(true);
        renderViews();
      } catch (err) {
        clear(status, errorBox(err));
      }
    });
    del.addEventListener("click", async () => {
      try {
        await api(`/experiments/${encodeURIComponent(exp)}/views/${encodeURIComponent(state.view)}`, { method: "DELETE" });
        syncUrl();
        renderViews();
      } catch (err) {
        clear(status, errorBox(err));
      }
    });
  }

  function renderExpComments() {
    const exp = oneExperiment();
    clear(expComments, exp ? commentsPanel("experiment", exp) : null);
  }

  async function loadChooser() {
    const search = h("input", { type: "search", placeholder: "search keys", "aria-label": "search keys" });
    const lists = h("div", { class: "chooser-lists" });
    clear(chooser, search, lists);
    const fill = async () => {
      const parts = await Promise.all(["metrics", "params", "tags"].map((kind) =>
        api("/ui/keys", { query: { kind, contains: search.value, limit: 100,
          experiment_ids: state.experiments || undefined } }).then((r) => [kind, r])));
      const chosen = new Set(state.columns || []);
      clear(lists, parts.map(([kind, r]) => h("div", { class: "chooser-kind" }, h("h4", {}, kind),
        r.keys.map((k) => {
          const id = `${kind}.${k}`;
          return h("label", { class: "menu-item" }, h("input", { type: "checkbox", checked: chosen.has(id),
            onchange: (e) => {
              const cols = (state.columns || []).filter((c) => c !== id);
              if (e.target.checked) cols.push(id);
              state.columns = cols;
              syncUrl();
              reload();
            } }), " ", k);
        }),
        r.truncated ? h("div", { class: "muted" }, "more… type to narrow") : null)));
    };
    search.addEventListener("input", debounce(fill, 250));
    await fill();
  }

  async function start() {
    try {
      // Deleted experiments are in the Trash, not in the picker.
      allExperiments = (await api("/ui/experiments")).experiments.filter((e) => e.lifecycle !== "deleted");
      renderExpMenu();
      renderExpDelete();
      if (state.view && oneExperiment()) {  // a shared link: the saved view's state
        const exp = oneExperiment();
        applyView(await api(`/experiments/${encodeURIComponent(exp)}/views/${encodeURIComponent(state.view)}`));
      } else state.view = null;
      renderViews();
      renderExpComments();
      api("/ui/keys", { query: { kind: "params", limit: 200 } }).then((r) => {
        groupSel.append(...r.keys.map((k) => h("option", { value: k }, `group by ${k}`)));
        groupSel.value = state.group;
      }).catch(() => {});
      if (state.columns === null) {  // a first visit: a few metrics and params to start with
        const [m, p] = await Promise.all(["metrics", "params"].map((kind) => api("/ui/keys", {
          query: { kind, limit: 5, experiment_ids: state.experiments || undefined } })));
        state.columns = [...m.keys.map((k) => `metrics.${k}`), ...p.keys.map((k) => `params.${k}`)];
      }
      if (state.filter) {
        const res = await api("/ui/check-filter", { query: { filter: state.filter } });
        filterError.textContent = res.ok ? "" : res.message;
        if (!res.ok) return;
      }
      reload();
    } catch (err) {
      clear(errBox, errorBox(err));
    }
  }
  start();
  const closeMenus = (e) => {
    if (!expMenu.contains(e.target) && e.target !== expButton) expMenu.hidden = true;
    if (!chooser.contains(e.target) && e.target !== colsButton) chooser.hidden = true;
  };
  document.addEventListener("click", closeMenus);
  return () => {
    table.destroy();
    document.removeEventListener("click", closeMenus);
  };
}
