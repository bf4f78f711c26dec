// What every view of the page shares: building elements, formatting numbers, talking to the JSON
// API, drawing a plotly plot, throttling. It renders no view and knows no route.
//
// Safety: names, thoughts, reasons and prompts are written by an LLM. Every value from the API goes
// into the page as text (textContent, via h() below) or, for plotly, HTML-escaped (plotText); the
// one exception is `code_html`, which pygments escaped on the server. No URL leaves this origin.

export const TOKEN_KEY = "lossforge.token";
export const REFRESH_MS = 2000; // at most one leaderboard/plot refresh per this interval
export const FINAL = new Set(["CANCELLED", "FINISHED", "FAILED"]);
const PLOT_FONT = { family: "system-ui, sans-serif", size: 12 };
// The mode bar shows only on hover, so it never sits on a title; plots follow their box's width.
const PLOT_CONFIG = { displaylogo: false, responsive: true, displayModeBar: "hover" };

// -- DOM --------------------------------------------------------------------------------------

// h("a", {href: "#/"}, "text", child, [more]) -> element; strings always become text nodes.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value == null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

// Appends children to an existing element, with h()'s rules (text, skipping null).
export function fill(el, ...children) {
  el.append(...h("div", {}, ...children).childNodes);
  return el;
}

// Replaces an element's children, with h()'s rules (arrays flattened, null skipped).
export function setChildren(el, ...children) {
  el.replaceChildren(...h("div", {}, ...children).childNodes);
  return el;
}

// For plotly labels, which interpret a little HTML: escape it so names show as typed.
export function plotText(value) {
  return String(value ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export const idOf = (value) => Number.parseInt(value, 10); // ids go into URLs only as integers
export const candidateLink = (id, label) => h("a", { href: `#/candidates/${idOf(id)}` }, label ?? `#${idOf(id)}`);
export const campaignLink = (id, label) => h("a", { href: `#/campaigns/${idOf(id)}` }, label ?? `#${idOf(id)}`);
export const badge = (text, kind) => h("span", { class: `badge ${kind || ""} ${String(text).toLowerCase()}` }, text);
// A name that may wrap after its words' separators (`-`, `_`, `.`), never inside a hash.
export function nameText(name) {
  const parts = String(name ?? "").split(/(?<=[-_.\s])/);
  return parts.flatMap((part, i) => (i ? [h("wbr", {}), part] : [part]));
}
export function crumbs(...parts) {
  return h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Campaigns"), parts.filter((p) => p != null).map((p) => [" / ", p]));
}

// -- formatting -------------------------------------------------------------------------------

const signed = (x, digits = 4) => `${x >= 0 ? "+" : ""}${Number(x).toFixed(digits)}`;
export function fmtScore(score, spread) {
  if (score == null) return "—";
  return spread == null ? signed(score) : `${signed(score)} ± ${Number(spread).toFixed(4)}`;
}
// `+0.0123 [−0.0040, +0.0286] n=4`: a paired score vs DPO with its 95% interval and n.
export function fmtInterval(score, low, high, n) {
  if (score == null) return "—";
  return low == null || high == null ? `${signed(score)} n=${n ?? 0}` : `${signed(score)} [${signed(low)}, ${signed(high)}] n=${n}`;
}
export const VERDICT = { confirmed: "confirmed", overfit: "overfit", unconfirmed: "unconfirmed" };
export function fmtRho(c) {
  if (!c || c.rho == null) return `— (n=${c ? c.n : 0}, too few candidates)`;
  const f = (x) => signed(x, 2);
  return c.low == null ? `${f(c.rho)} (n=${c.n})` : `${f(c.rho)} [${f(c.low)}, ${f(c.high)}] (n=${c.n})`;
}
export function fmtNumber(x) {
  if (typeof x !== "number") return String(x);
  if (Number.isInteger(x)) return String(x);
  return Math.abs(x) >= 1000 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(2) : x.toPrecision(4);
}
export function fmtTime(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}
export function fmtClock(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString();
}
export function fmtSeconds(s) {
  s = Math.round(Number(s) || 0);
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
// `budget` is {used, limits}. `proposed`, when known, is what the candidates limit counts
// (baselines excluded), so "6 proposed / 6" never stands beside a count that includes baselines.
export function budgetText(budget, proposed) {
  const used = (budget && budget.used) || {};
  const limits = (budget && budget.limits) || {};
  const of = (key) => (limits[key] != null ? ` / ${fmtNumber(limits[key])}` : "");
  const parts = [];
  const candidates = proposed ?? used.candidates;
  if (candidates != null) parts.push(`${fmtNumber(candidates)}${of("candidates")} proposed`);
  else if (limits.candidates != null) parts.push(`limit ${fmtNumber(limits.candidates)} proposed`);
  if (used.wall_time_s != null) {
    parts.push(`${fmtSeconds(used.wall_time_s)}${limits.wall_time_s != null ? ` / ${fmtSeconds(limits.wall_time_s)}` : ""} wall`);
  }
  if (used.compute_hours != null) {
    const hours = Number(used.compute_hours);
    parts.push(limits.compute_hours != null || hours >= 1
      ? `${hours.toFixed(2)}${of("compute_hours")} CPU-h`
      : `${fmtSeconds(hours * 3600)} compute`);
  }
  if (used.llm_dollars) parts.push(`$${Number(used.llm_dollars).toFixed(2)}${of("llm_dollars")} LLM`);
  return parts.join(" · ") || "—";
}
export function countsText(counts) {
  const entries = Object.entries(counts || {}).filter(([, n]) => n > 0).sort();
  const total = entries.reduce((sum, [, n]) => sum + n, 0);
  return [String(total), entries.map(([k, n]) => `${k.toLowerCase()} ${n}`).join(", ")];
}
// Dollars: cents above a dollar, two significant digits below ($0.0042).
export function fmtDollars(x) {
  if (x == null) return "—";
  const v = Number(x);
  return v >= 1 || v === 0 ? `$${v.toFixed(2)}` : `$${Number(v.toPrecision(2))}`;
}

// -- API --------------------------------------------------------------------------------------

export class ApiError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : `HTTP ${status}`);
    this.status = status;
    this.detail = detail;
  }
}

export const token = () => (localStorage.getItem(TOKEN_KEY) || "").trim();

export async function api(path, { method = "GET", body, contentType } = {}) {
  const headers = { Accept: "application/json" };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (contentType) headers["Content-Type"] = contentType;
  const response = await fetch(path, { method, headers, body });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = text; }
  if (!response.ok) throw new ApiError(response.status, problem(response, data));
  return data;
}

// What a refused request says: the API's `detail` (a sentence, or field errors); a short plain
// text body as it is; otherwise (a proxy's HTML page, say) the status, with what 413 means.
function problem(response, data) {
  if (data && data.detail !== undefined) return data.detail;
  if (typeof data === "string" && data.trim() && data.length <= 300 && !/^\s*</.test(data)) return data.trim();
  if (response.status === 413) return "the request is too large for this server (a campaign spec is at most 1,000,000 bytes)";
  return `HTTP ${response.status} ${response.statusText}`.trim();
}

// An error as lines a person can act on: field errors as "field: message".
export function errorLines(err) {
  if (!(err instanceof ApiError)) return [String(err && err.message ? err.message : err)];
  if (err.status === 401) {
    return [token() ? "this server needs an API token: the one set above was refused" : "this server needs an API token: set it above"];
  }
  if (Array.isArray(err.detail)) {
    return err.detail.map((e) => {
      const loc = (e.loc || []).filter((part, i) => !(i === 0 && part === "body")).join(".");
      return loc ? `${loc}: ${e.msg}` : String(e.msg);
    });
  }
  return [typeof err.detail === "string" ? err.detail : `HTTP ${err.status}: ${JSON.stringify(err.detail)}`];
}
export function errorBox(err, title) {
  return h("div", { class: "errors", role: "alert" },
    title ? h("strong", {}, title) : null,
    h("ul", {}, errorLines(err).map((line) => h("li", {}, line))));
}

// -- views' lifetime, plots, throttling -------------------------------------------------------

// Each view gets a context; leaving the view runs its cleanups (timers, streams, plots) and any
// still-loading view sees ctx.alive turn false.
export function newContext() {
  const ctx = { alive: true, cleanups: [] };
  ctx.own = (fn) => (ctx.alive ? ctx.cleanups.push(fn) : fn());
  return ctx;
}

export function plot(ctx, div, traces, layout) {
  const full = { font: PLOT_FONT, margin: { l: 60, r: 16, t: 48, b: 48 }, height: 340, autosize: true, ...layout };
  // Titles sit top left; the mode bar (top right) shows only on hover.
  if (full.title) full.title = { x: 0, xanchor: "left", xref: "paper", font: { size: 14 }, ...full.title };
  const draw = div.dataset.drawn ? Plotly.react : Plotly.newPlot;
  if (!div.dataset.drawn) ctx.own(() => Plotly.purge(div));
  div.dataset.drawn = "1";
  return draw(div, traces, full, PLOT_CONFIG);
}

// Clicking a point opens its candidate (customdata holds the id).
export function linkPoints(div) {
  if (div.dataset.linked) return;
  div.dataset.linked = "1";
  div.on("plotly_click", (data) => {
    const id = data.points && data.points[0] && data.points[0].customdata;
    if (id != null) location.hash = `#/candidates/${idOf(id)}`;
  });
}

// fn() at most once per `ms`, never two at once; calls in between fold into one trailing call.
export function throttle(fn, ms) {
  let last = 0;
  let timer = null;
  let running = false;
  let again = false;
  async function run() {
    timer = null;
    if (running) { again = true; return; }
    running = true;
    last = Date.now();
    try { await fn(); } finally {
      running = false;
      if (again) { again = false; schedule(); }
    }
  }
  function schedule() {
    if (timer === null) timer = setTimeout(run, Math.max(0, last + ms - Date.now()));
  }
  schedule.cancel = () => { clearTimeout(timer); timer = null; };
  return schedule;
}

// A <select> of `options` ([value, label] or value), calling onchange(value).
export function select(attrs, options, chosen, onchange) {
  return h("select", { ...attrs, onchange: (e) => onchange(e.target.value) },
    options.map((o) => {
      const [value, label] = Array.isArray(o) ? o : [o, o];
      return h("option", { value, selected: String(value) === String(chosen) }, label);
    }));
}
