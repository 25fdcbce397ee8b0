// A virtualised table: only the rows in view (plus a margin) exist in the DOM, so
// 10,000 runs scroll as smoothly as 10.  Rows come from a pager, page by page, as
// the user scrolls towards them.
import { h } from "./util.js";

export const ROW_HEIGHT = 28;
const OVERSCAN = 8;

export class VirtualTable {
  /**
   * columns: [{id, label, width, sortable, cell(row) -> Node|string, header?()}]
   * fetchPage(offset) -> Promise<{rows, next_offset}>
   */
  constructor(el, { columns, fetchPage, onSort = null, sort = null, pageSize = 500, rowClass = null }) {
    this.el = el;
    this.rowClass = rowClass;
    this.columns = columns;
    this.fetchPage = fetchPage;
    this.onSort = onSort;
    this.sort = sort;
    this.pageSize = pageSize;
    this.rows = [];
    this.more = true;
    this.loading = null;
    this.generation = 0;
    this.header = h("div", { class: "vt-header", role: "row" });
    this.spacer = h("div", { class: "vt-spacer" });
    this.body = h("div", { class: "vt-body", role: "rowgroup" });
    this.scroller = h("div", { class: "vt-scroll", role: "table" }, this.header,
      h("div", { class: "vt-canvas" }, this.spacer, this.body));
    this.status = h("div", { class: "vt-status muted" });
    el.append(this.scroller, this.status);
    this.frame = 0;
    this.scroller.addEventListener("scroll", () => this.schedule());
    this.resize = new ResizeObserver(() => this.schedule());
    this.resize.observe(this.scroller);
    this.renderHeader();
  }

  setColumns(columns) {
    this.columns = columns;
    this.renderHeader();
    this.render(true);
  }

  gridTemplate() {
    return this.columns.map((c) => `${c.width || 140}px`).join(" ");
  }

  renderHeader() {
    const tpl = this.gridTemplate();
    this.header.style.gridTemplateColumns = tpl;
    this.header.replaceChildren(...this.columns.map((c) => {
      const dir = this.sort && this.sort.id === c.id ? this.sort.dir : null;
      const label = c.header ? c.header() : c.label;
      const cell = h("div", { class: "vt-th" + (c.sortable ? " sortable" : ""), role: "columnheader",
        title: c.title || c.label, "aria-sort": dir ? (dir === "ASC" ? "ascending" : "descending") : "none" },
      label, dir ? h("span", { class: "sort" }, dir === "ASC" ? " ▲" : " ▼") : null);
      if (c.sortable && this.onSort) {
        cell.addEventListener("click", () => {
          // Descending first (best metric on top), then ascending, then unsorted.
          const next = !dir ? "DESC" : dir === "DESC" ? "ASC" : null;
          this.onSort(next ? { id: c.id, dir: next } : null);
        });
      }
      return cell;
    }));
    const width = this.columns.reduce((a, c) => a + (c.width || 140), 0);
    this.spacer.style.width = `${width}px`;
  }

  /** Start again from the first page (new filter, sort or experiments). */
  reset() {
    this.generation++;
    this.rows = [];
    this.more = true;
    this.loading = null;
    this.scroller.scrollTop = 0;
    this.status.textContent = "loading…";
    return this.loadMore();
  }

  loadMore() {
    if (this.loading || !this.more) return this.loading;
    const gen = this.generation;
    this.loading = this.fetchPage(this.rows.length).then((page) => {
      if (gen !== this.generation) return;
      this.rows.push(...page.rows);
      this.more = page.next_offset !== null && page.next_offset !== undefined;
      this.loading = null;
      this.render(true);
    }, (err) => {
      if (gen !== this.generation) return;
      this.loading = null;
      this.more = false;
      this.status.textContent = "";
      throw err;
    });
    return this.loading;
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render(false);
    });
  }

  render(force) {
    const total = this.rows.length;
    this.spacer.style.height = `${total * ROW_HEIGHT}px`;
    const top = this.scroller.scrollTop;
    const view = this.scroller.clientHeight || 600;
    const first = Math.max(0, Math.floor(top / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(total, Math.ceil((top + view) / ROW_HEIGHT) + OVERSCAN);
    if (!force && first === this.first && last === this.last) return;
    this.first = first;
    this.last = last;
    const tpl = this.gridTemplate();
    const nodes = [];
    for (let i = first; i < last; i++) {
      const row = this.rows[i];
      const extra = this.rowClass ? this.rowClass(row, i, this.rows) : "";
      const el = h("div", { class: "vt-row" + (i % 2 ? " odd" : "") + (extra ? ` ${extra}` : ""), role: "row",
        style: { transform: `translateY(${i * ROW_HEIGHT}px)`, gridTemplateColumns: tpl } });
      el.dataset.index = String(i);
      for (const c of this.columns) {
        const v = c.cell(row);
        el.append(h("div", { class: "vt-td" + (c.numeric ? " num" : ""), role: "cell" }, v));
      }
      nodes.push(el);
    }
    this.body.replaceChildren(...nodes);
    this.status.textContent = `${total}${this.more ? "+" : ""} run${total === 1 ? "" : "s"}` +
      (this.more ? " (more load as you scroll)" : "");
    // Fetch the next page before the user reaches the end of what is loaded.
    if (this.more && !this.loading && last + this.pageSize / 4 >= total) {
      this.loadMore().catch(() => {});
    }
  }

  destroy() {
    this.resize.disconnect();
    cancelAnimationFrame(this.frame);
    this.generation++;
  }
}
