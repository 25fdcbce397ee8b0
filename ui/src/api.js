// The REST API (/api/v1): JSON in, JSON out; a failure is an ApiError with the server's message.

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.message) || `request failed with status ${status}`);
    this.status = status;
    this.body = body;
  }
}

export async function api(path, { method = "GET", body, text, query, signal } = {}) {
  let url = "/api/v1" + path;
  if (query) {
    const q = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v === undefined || v === null) continue;
      for (const item of Array.isArray(v) ? v : [v]) q.append(k, item);
    }
    const s = q.toString();
    if (s) url += (url.includes("?") ? "&" : "?") + s;
  }
  const init = { method, signal, headers: {} };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  } else if (text !== undefined) {  // a raw text body (a tag's value)
    init.headers["content-type"] = "text/plain; charset=utf-8";
    init.body = text;
  }
  const token = localStorage.getItem("cairn.token");
  if (token) init.headers.authorization = `Bearer ${token}`;
  const r = await fetch(url, init);
  const raw = await r.text();
  let data = null;
  try {
    data = raw ? JSON.parse(raw) : null;
  } catch {
    data = { message: raw };
  }
  if (r.status === 401) window.dispatchEvent(new CustomEvent("cairn:login", { detail: data }));
  if (!r.ok) throw new ApiError(r.status, data);
  return data;
}

/**
 * Who this browser signs in as: {auth, user} from GET /ui/session, with `token` (the stored
 * one by default). The server answers 200 whatever the token, so neither "sign in first"
 * nor "that token was refused" is a failed request (a 401 the browser logs as an error).
 */
export async function session(token = localStorage.getItem("cairn.token")) {
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const r = await fetch("/api/v1/ui/session", { headers });
  const data = await r.json().catch(() => null);
  if (!r.ok || !data) throw new ApiError(r.status, data);
  return data;
}

/** Every page of POST /runs/search for a filter (for compare: a handful of runs). */
export async function searchAll(filter, experimentIds = null) {
  const runs = [];
  let token = null;
  do {
    const page = await api("/runs/search", {
      method: "POST",
      body: { experiment_ids: experimentIds, filter, max_results: 1000, page_token: token },
    });
    runs.push(...page.runs);
    token = page.next_page_token;
  } while (token);
  return runs;
}
