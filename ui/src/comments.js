// A comment thread for one target (a run, an experiment, a model version, a data set
// version): Markdown bodies rendered safely (markdown.js), replies, edits with their
// history, soft deletes.  The panel offers edit/delete only on the user's own comments
// (with auth off, on all), so it never makes a request the server would refuse.
import { api, session } from "./api.js";
import { markdown } from "./markdown.js";
import { h, clear, fmtTime, errorBox } from "./util.js";

let who = null;
const MAX_NEST = 8;

function me() {
  if (!who) who = session().then((s) => (s.auth ? s.user : null)).catch(() => null);
  return who;
}

/** A <section> holding the comments on target (targetType, targetId). */
export function commentsPanel(targetType, targetId) {
  const box = h("section", { class: "comments", "data-target": `${targetType}:${targetId}` });
  const list = h("div", { class: "comment-list" });
  const status = h("div", { role: "status" });
  let user = null;
  let comments = [];

  function editor(initial, label, onSave, onCancel) {
    const area = h("textarea", { rows: 4, cols: 80, "aria-label": label,
      placeholder: "Markdown: **bold**, `code`, [links](https://…), @mentions" });
    area.value = initial;
    const err = h("div", { role: "status" });
    const save = h("button", { class: "primary", onclick: async () => {
      if (!area.value.trim()) { clear(err, "Write something first."); return; }
      save.disabled = true;
      try {
        await onSave(area.value);
      } catch (e) {
        clear(err, errorBox(e));
      } finally {
        save.disabled = false;
      }
    } }, initial ? "Save" : "Comment");
    return h("div", { class: "comment-editor" }, area,
      h("div", { class: "toolbar" }, save, onCancel ? h("button", { onclick: onCancel }, "Cancel") : null, err));
  }

  function mine(c) {
    return user === null || c.author === user;
  }

  function one(c, children) {
    const body = h("div", { class: "comment-body" });
    const tools = h("div", { class: "comment-tools" });
    const extra = h("div", {});
    const node = h("div", { class: `comment${c.deleted ? " deleted" : ""}`, "data-comment": c.id },
      h("div", { class: "comment-head" }, h("strong", {}, c.author), " ",
        h("span", { class: "muted" }, fmtTime(c.created_at)),
        c.edits ? h("span", { class: "muted" }, ` · edited${c.edited_by && c.edited_by !== c.author ? ` by ${c.edited_by}` : ""}`) : null),
      body, tools, extra, h("div", { class: "replies" }, children));
    if (c.deleted) {
      clear(body, h("p", { class: "muted" }, "This comment was deleted."));
      if (mine(c)) tools.append(h("button", { class: "link", onclick: () => act(() => api(`/comments/${c.id}/restore`, { method: "POST" })) }, "Restore"));
      return node;
    }
    clear(body, markdown(c.body));
    tools.append(h("button", { class: "link", onclick: () => {
      clear(extra, editor("", `reply to ${c.author}`, async (text) => {
        await api("/comments", { method: "POST", body: { target_type: targetType, target_id: targetId, body: text, parent_id: c.id } });
        await load();
      }, () => clear(extra)));
      extra.querySelector("textarea").focus();
    } }, "Reply"));
    if (mine(c)) {
      tools.append(h("button", { class: "link", onclick: () => {
        clear(body, editor(c.body, "edit comment", async (text) => {
          await api(`/comments/${c.id}`, { method: "PUT", body: { body: text } });
          await load();
        }, () => clear(body, markdown(c.body))));
      } }, "Edit"));
      tools.append(h("button", { class: "link danger", onclick: () => act(() => api(`/comments/${c.id}`, { method: "DELETE" })) }, "Delete"));
    }
    if (c.edits) {
      tools.append(h("button", { class: "link", onclick: async () => {
        if (extra.firstChild) { clear(extra); return; }
        try {
          const { edits } = await api(`/comments/${c.id}/history`);
          clear(extra, h("ol", { class: "comment-history" }, edits.map((e) => h("li", {},
            h("div", { class: "muted" }, `before edit ${e.seq} by ${e.editor}, ${fmtTime(e.edited_at)}`), markdown(e.body)))));
        } catch (e) {
          clear(extra, errorBox(e));
        }
      } }, "History"));
    }
    return node;
  }

  async function act(call) {
    clear(status);
    try {
      await call();
      await load();
    } catch (e) {
      clear(status, errorBox(e));
    }
  }

  function render() {
    const kids = new Map();
    const ids = new Set(comments.map((c) => c.id));
    for (const c of comments) {
      const parent = c.parent_id && ids.has(c.parent_id) ? c.parent_id : null;
      if (!kids.has(parent)) kids.set(parent, []);
      kids.get(parent).push(c);
    }
    // Replies nest MAX_NEST deep; a longer chain's later replies show at that depth, in
    // order (a chain of thousands, one request each, must not overflow the stack).
    const flat = (c) => {
      const out = [];
      const stack = [...(kids.get(c.id) || [])].reverse();
      while (stack.length) {
        const k = stack.pop();
        out.push(one(k, []));
        stack.push(...[...(kids.get(k.id) || [])].reverse());
      }
      return out;
    };
    const tree = (c, d) => one(c, d >= MAX_NEST ? flat(c) : (kids.get(c.id) || []).map((k) => tree(k, d + 1)));
    clear(list, comments.length ? (kids.get(null) || []).map((c) => tree(c, 0)) : h("p", { class: "muted" }, "No comments yet."));
  }

  async function load() {
    const res = await api("/comments", { query: { target_type: targetType, target_id: targetId } });
    comments = res.comments;
    render();
  }

  const composer = editor("", "new comment", async (text) => {
    await api("/comments", { method: "POST", body: { target_type: targetType, target_id: targetId, body: text } });
    composer.querySelector("textarea").value = "";
    await load();
  }, null);
  clear(box, h("h2", {}, "Comments"), list, composer, status);
  me().then((u) => { user = u; return load(); }).catch((e) => clear(status, errorBox(e)));
  return box;
}

/** Where a comment's target opens in the UI. */
export function targetLink(c) {
  const [name, version] = [c.target_id.slice(0, c.target_id.lastIndexOf("@")), c.target_id.slice(c.target_id.lastIndexOf("@") + 1)];
  switch (c.target_type) {
    case "run": return h("a", { href: `/runs/${encodeURIComponent(c.target_id)}` }, `run ${c.target_id.slice(0, 8)}`);
    case "experiment": return h("a", { href: `/?experiments=${encodeURIComponent(c.target_id)}` }, `experiment ${c.target_id}`);
    case "model_version": return h("a", { href: `/models/${encodeURIComponent(name)}` }, `model ${c.target_id}`);
    default: return h("a", { href: `/datasets/${encodeURIComponent(name)}?version=${encodeURIComponent(version)}` }, `data set ${c.target_id}`);
  }
}

/** The page of comments that mention the signed-in user (?user=NAME: someone else's, for admins). */
export function mentionsPage(root, _args, params) {
  const list = h("div", { class: "comment-list" });
  const user = params.get("user");
  clear(root, h("h1", {}, user ? `Comments that mention @${user}` : "Comments that mention you"), list);
  api("/comments/mentions", { query: { user: user || undefined } }).then(({ comments }) => {
    clear(list, comments.length ? comments.map((c) => h("div", { class: "comment", "data-comment": c.id },
      h("div", { class: "comment-head" }, h("strong", {}, c.author), " on ", targetLink(c), " ",
        h("span", { class: "muted" }, fmtTime(c.created_at))),
      h("div", { class: "comment-body" }, markdown(c.body))))
      : h("p", { class: "muted" }, "No comments mention you yet."));
  }).catch((err) => clear(list, errorBox(err)));
}
