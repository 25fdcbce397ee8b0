// A small Markdown renderer that builds DOM nodes and never parses HTML: every piece of
// text becomes a text node, so `<img onerror=...>` or `<script>` in a comment shows as the
// characters typed.  Links keep only http(s), mailto and same-site addresses; anything else
// (`javascript:`, `data:`, `vbscript:`...) is shown as plain text.
// Blocks: paragraphs, # headings, > quotes, - and 1. lists, ``` code blocks (a report's
// ```cairn-panel blocks: see `panel` below and cairn/collab/reports.py, which finds them alike).
// Inline: `code`, **bold**, *italic* / _italic_, [text](url), @mentions.
import { h } from "./util.js";

const MAX_QUOTES = 8;

const INLINE = /(`+)([\s\S]*?[^`])\1(?!`)|\*\*(?=\S)([\s\S]*?\S)\*\*|\*(?=[^\s*])([^*]*?[^\s*])\*|(?<![\w])_(?=[^\s_])([^_]*?[^\s_])_(?![\w])|\[([^\]\n]+)\]\(([^()\s]+)\)|(?<![\w@.+-])@([A-Za-z0-9](?:[A-Za-z0-9._@+-]*[A-Za-z0-9_@+-])?)/g;

/** The address a link may point to, or null: http(s), mailto, or a path on this site. */
export function safeHref(url) {
  const u = String(url).trim();
  if (/^(https?:\/\/|mailto:)[^\s]*$/i.test(u)) return u;
  if (/^[/#?]/.test(u) && !u.startsWith("//") && !u.includes("\\")) return u;
  return null;
}

/** Inline Markdown of `text` as an array of nodes. */
export function inline(text) {
  const out = [];
  let last = 0;
  const re = new RegExp(INLINE.source, "g");  // its own: the calls below recurse
  for (let m = re.exec(text); m; m = re.exec(text)) {
    if (m.index > last) out.push(document.createTextNode(text.slice(last, m.index)));
    last = re.lastIndex;
    if (m[1] !== undefined) out.push(h("code", {}, m[2]));
    else if (m[3] !== undefined) out.push(h("strong", {}, inline(m[3])));
    else if (m[4] !== undefined) out.push(h("em", {}, inline(m[4])));
    else if (m[5] !== undefined) out.push(h("em", {}, inline(m[5])));
    else if (m[6] !== undefined) {
      const href = safeHref(m[7]);
      if (href === null) out.push(document.createTextNode(m[0]));
      else {
        const external = !/^[/#?]/.test(href);
        out.push(h("a", { href, rel: "noopener noreferrer nofollow", target: external ? "_blank" : null }, inline(m[6])));
      }
    } else out.push(h("span", { class: "mention" }, `@${m[8]}`));
  }
  if (last < text.length) out.push(document.createTextNode(text.slice(last)));
  return out;
}

function paragraph(lines) {
  const nodes = [];
  lines.forEach((line, i) => {
    if (i) nodes.push(h("br", {}));
    nodes.push(...inline(line));
  });
  return h("p", {}, nodes);
}

/**
 * Markdown `text` as a <div class="markdown">.  `panel(source)`, if given, may turn a
 * top-level ```cairn-panel fenced block into a node (a report's live panel); it returns
 * null for a block it does not know, which then shows as code.
 */
export function markdown(text, { panel = null, depth = 0 } = {}) {
  const lines = String(text).replace(/\r\n?/g, "\n").split("\n");
  const blocks = [];
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^\s*$/.test(line)) { i++; continue; }
    const fence = line.match(/^\s*(```+|~~~+)/);
    if (fence) {
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence[1])) body.push(lines[i++]);
      i++;
      const node = panel && line.slice(fence[0].length).trim() === "cairn-panel" ? panel(body.join("\n")) : null;
      blocks.push(node || h("pre", {}, h("code", {}, body.join("\n"))));
      continue;
    }
    const head = line.match(/^(#{1,6})\s+(.*)$/);
    if (head) {
      blocks.push(h(`h${Math.min(head[1].length + 2, 6)}`, {}, inline(head[2])));
      i++;
      continue;
    }
    // Quotes nest MAX_QUOTES deep; deeper markers stay text (each level is a call: a line
    // of 60,000 '>' would otherwise overflow the stack of every page that shows it).
    if (/^\s*>/.test(line) && depth < MAX_QUOTES) {
      const body = [];
      while (i < lines.length && /^\s*>/.test(lines[i])) body.push(lines[i++].replace(/^\s*>\s?/, ""));
      blocks.push(h("blockquote", {}, [...markdown(body.join("\n"), { depth: depth + 1 }).childNodes]));
      continue;
    }
    const bullet = /^\s*[-*+]\s+/;
    const numbered = /^\s*\d{1,9}[.)]\s+/;
    if (bullet.test(line) || numbered.test(line)) {
      const re = bullet.test(line) ? bullet : numbered;
      const items = [];
      while (i < lines.length && re.test(lines[i])) items.push(h("li", {}, inline(lines[i++].replace(re, ""))));
      blocks.push(h(re === bullet ? "ul" : "ol", {}, items));
      continue;
    }
    const para = [];
    while (i < lines.length && !/^\s*$/.test(lines[i]) && !/^\s*(```|~~~|#{1,6}\s|>|[-*+]\s|\d{1,9}[.)]\s)/.test(lines[i])) para.push(lines[i++]);
    if (!para.length) para.push(lines[i++]);
    blocks.push(paragraph(para));
  }
  return h("div", { class: "markdown" }, blocks);
}
