// The single-page app: one URL per page, drawn into <main id="app">.
import "uplot/dist/uPlot.min.css";
import "./style.css";
import { h, clear, errorBox } from "./util.js";
import { session } from "./api.js";
import { runsPage } from "./pages/runs.js";
import { runPage } from "./pages/run.js";
import { comparePage } from "./pages/compare.js";
import { modelsPage, modelPage } from "./pages/models.js";
import { monitoringPage } from "./pages/monitoring.js";
import { kpiPage } from "./pages/kpi.js";
import { datasetsPage, datasetPage } from "./pages/datasets.js";
import { lineagePage } from "./pages/lineage.js";
import { dashboardsPage, dashboardPage } from "./pages/dashboards.js";
import { reportsPage, reportPage } from "./pages/reports.js";
import { mentionsPage } from "./comments.js";
import { trashPage } from "./pages/trash.js";

const ROUTES = [
  [/^\/$/, runsPage, "runs"],
  [/^\/runs\/([^/]+)$/, runPage, "runs"],
  [/^\/compare$/, comparePage, "runs"],
  [/^\/models$/, modelsPage, "models"],
  [/^\/models\/([^/]+)$/, modelPage, "models"],
  [/^\/models\/([^/]+)\/monitoring$/, monitoringPage, "models"],
  [/^\/kpi$/, kpiPage, "models"],
  [/^\/datasets$/, datasetsPage, "datasets"],
  [/^\/datasets\/(.+)$/, datasetPage, "datasets"],
  [/^\/lineage$/, lineagePage, ""],
  [/^\/dashboards$/, dashboardsPage, "dashboards"],
  [/^\/dashboards\/([^/]+)$/, dashboardPage, "dashboards"],
  [/^\/reports$/, reportsPage, "reports"],
  [/^\/reports\/([^/]+)$/, reportPage, "reports"],
  [/^\/mentions$/, mentionsPage, "mentions"],
  [/^\/trash$/, trashPage, "trash"],
];

const root = document.getElementById("app");
let dispose = null;

export function navigate(url, { replace = false } = {}) {
  if (replace) history.replaceState(null, "", url);
  else history.pushState(null, "", url);
  render();
}

function render() {
  if (loginShown) return;  // the sign-in form stays until a token is accepted
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

// A team server with auth on needs an API token: ask for one, keep it in this browser
// (localStorage), and send it as a Bearer token from then on. GET /ui/session says first
// whether one is needed and whether the stored (or a typed) token is good, so neither a
// first visit nor a mistyped token makes a request the server refuses.
let loginShown = false;

function showLogin(why) {
  loginShown = true;
  const input = h("input", { type: "password", placeholder: "API token", "aria-label": "API token", size: 48 });
  const note = h("p", {}, why);
  const button = h("button", { class: "primary", type: "submit" }, "Sign in");
  const form = h("form", { class: "login", onsubmit: async (ev) => {
    ev.preventDefault();
    const token = input.value.trim();
    if (!token) { clear(note, "Paste an API token first."); return; }
    button.disabled = true;
    try {
      const s = await session(token);
      if (s.auth && !s.user) {
        clear(note, "That token was refused: it is unknown, revoked or expired.");
        input.select();
        return;
      }
      localStorage.setItem("cairn.token", token);
      location.reload();
    } catch (err) {
      clear(note, errorBox(err));
    } finally {
      button.disabled = false;
    }
  } }, h("h2", {}, "Sign in"), note, input, " ", button);
  clear(root, form);
  input.focus();
}

// A token that stops working later (expired, revoked) still meets a 401 from the API.
window.addEventListener("cairn:login", (e) => {
  if (loginShown) return;
  const why = (e.detail && e.detail.message) || "sign in again.";
  showLogin(localStorage.getItem("cairn.token") ? `The saved token was refused: ${why}`
    : `This server needs an API token: ${why}`);
});

function signOutLink(user) {
  document.querySelector(".top").append(h("span", { class: "signout" },
    user ? h("span", { class: "whoami" }, user, " ") : null,
    h("a", { href: "#", onclick: (e) => {
      e.preventDefault();
      localStorage.removeItem("cairn.token");
      location.reload();
    } }, "Sign out")));
}

async function start() {
  let s = null;
  try {
    s = await session();
  } catch {
    // No answer (the server is down, or an older one): draw the page, which says what failed.
  }
  if (s && s.auth && !s.user) {
    const known = !!localStorage.getItem("cairn.token");
    showLogin(known ? "The saved token was refused: it is unknown, revoked or expired. Sign in again."
      : "This server needs an API token.");
    return;
  }
  if (s && s.auth) signOutLink(s.user);
  else if (!s && localStorage.getItem("cairn.token")) signOutLink(null);
  render();
}
start();
