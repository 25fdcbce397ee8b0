// The single-page app: one URL per page, drawn into <main id="app">.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { h, clear, errorBox } from "./util.js";
import { runsPage } from "./pages/runs.js";
import { runPage } from "./pages/run.js";
import { comparePage } from "./pages/compare.js";
import { modelsPage, modelPage } from "./pages/models.js";
import { datasetsPage, datasetPage } from "./pages/datasets.js";
import { lineagePage } from "./pages/lineage.js";

const ROUTES = [
  [/^\/$/, runsPage, "runs"],
  [/^\/runs\/([^/]+)$/, runPage, "runs"],
  [/^\/compare$/, comparePage, "runs"],
  [/^\/models$/, modelsPage, "models"],
  [/^\/models\/([^/]+)$/, modelPage, "models"],
  [/^\/datasets$/, datasetsPage, "datasets"],
  [/^\/datasets\/(.+)$/, datasetPage, "datasets"],
  [/^\/lineage$/, lineagePage, ""],
];

const root = document.getElementById("app");
let dispose = null;

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

function render() {
  if (dispose) dispose();
  dispose = null;
  const path = location.pathname;
  const params = new URLSearchParams(location.search);
  for (const [re, page, nav] of ROUTES) {
    const m = path.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll("[data-nav]")) {
      a.classList.toggle("active", a.dataset.nav === nav);
    }
    clear(root);
    const args = m.slice(1).map(decodeURIComponent);
    try {
      dispose = page(root, args, params, navigate) || null;
    } catch (err) {
      clear(root, errorBox(err));
    }
    return;
  }
  clear(root, h("h1", {}, "Not found"), h("p", {}, `No page at ${path}. `, h("a", { href: "/" }, "Runs")));
}

// Links inside the app change the page without reloading it.
document.addEventListener("click", (e) => {
  const a = e.target.closest("a[href]");
  if (e.defaultPrevented || !a || a.getAttribute("href").startsWith("#") || a.target || a.hasAttribute("download") || e.button !== 0) return;
  if (e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  const url = new URL(a.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith("/api/")) return;
  e.preventDefault();
  navigate(url.pathname + url.search);
});
window.addEventListener("popstate", render);

// A team server with auth on answers 401 without a token: ask for one, keep it in this
// browser (localStorage), and send it as a Bearer token from then on.
let loginShown = false;
window.addEventListener("cairn:login", (e) => {
  if (loginShown) return;
  loginShown = true;
  const known = !!localStorage.getItem("cairn.token");
  const input = h("input", { type: "password", placeholder: "API token", "aria-label": "API token", size: 48 });
  const form = h("form", { class: "login", onsubmit: (ev) => {
    ev.preventDefault();
    localStorage.setItem("cairn.token", input.value.trim());
    location.reload();
  } }, h("h2", {}, "Sign in"),
  h("p", {}, known ? "The saved token was refused: " : "This server needs an API token: ", (e.detail && e.detail.message) || ""),
  input, " ", h("button", { class: "primary", type: "submit" }, "Sign in"));
  clear(root, form);
  input.focus();
});
if (localStorage.getItem("cairn.token")) {
  document.querySelector(".top").append(h("a", { href: "#", class: "signout", onclick: (e) => {
    e.preventDefault();
    localStorage.removeItem("cairn.token");
    location.reload();
  } }, "Sign out"));
}
render();
