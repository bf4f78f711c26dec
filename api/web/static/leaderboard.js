// A campaign's leaderboard: the metric each stage's score measures named above the table, scores
// with their 95% interval and n, sorting by a click on a header, filters, per-task columns on
// demand, CSV and JSON of exactly the rows shown, and ticks that open the compare view. The server
// sorts, filters and pages (the query below is the one the downloads use); this module only draws.

import {
  ApiError, VERDICT, api, badge, candidateLink, errorBox, fmtInterval, h, idOf, nameText, select, token,
} from "./core.js";

const PAGE_SIZE = 25;
const MAX_COMPARE = 6;
// Header -> the API's sort key; a score sorts best first, everything else ascending.
const SORTS = { rank: "rank", id: "id", name: "name", island: "island", stage: "stage", score: "score", held_out: "held_out", fresh_held_out: "fresh_held_out" };
const DESC_FIRST = new Set(["score", "held_out", "fresh_held_out"]);
const STATUSES = ["PROPOSED", "ACCEPTED", "EVALUATED", "REJECTED", "DUPLICATE", "FAILED", "UNSCORED"];
const ORIGINS = ["baseline", "evolve", "llm", "hf-local", "user"];

// state: what is asked for; the query string is built from it alone.
export function boardQuery(state, { paged = true } = {}) {
  const q = new URLSearchParams();
  if (paged) { q.set("offset", state.offset); q.set("limit", PAGE_SIZE); }
  if (state.scoredOnly) q.set("scored", "true");
  if (state.sort !== "rank") q.set("sort", state.sort);
  if (state.order) q.set("order", state.order);
  for (const key of ["stage", "status", "origin", "confirmation", "island", "q"]) {
    if (state[key] !== "" && state[key] != null) q.set(key, state[key]);
  }
  if (state.tasks) q.set("tasks", "true");
  return q.toString();
}

// Returns {element, load}: load() fetches and redraws with the current state.
export function leaderboard(ctx, campaign, onError) {
  const id = idOf(campaign.id);
  const state = { offset: 0, scoredOnly: false, sort: "rank", order: "", stage: "", status: "", origin: "", confirmation: "", island: "", q: "", tasks: false };
  const selected = new Set();
  const board = h("div", { id: "leaderboard" });
  const metricsLine = h("p", { class: "metrics muted small" });
  const downloads = h("span", { class: "downloads" });
  const compareButton = h("button", { type: "button", id: "compare", disabled: true, onclick: () => { location.hash = `#/compare/${[...selected].join(",")}`; } }, "Compare");
  const set = (key) => (value) => { state[key] = value; state.offset = 0; load().catch(onError); };
  let typing = null;
  const filters = h("div", { class: "filters" },
    h("label", {}, "stage ", select({ id: "filter-stage" }, [["", "any"], ...(campaign.stages || [])], "", set("stage"))),
    h("label", {}, "status ", select({ id: "filter-status" }, [["", "any"], ...STATUSES], "", set("status"))),
    h("label", {}, "origin ", select({ id: "filter-origin" }, [["", "any"], ...ORIGINS], "", set("origin"))),
    h("label", {}, "verdict ", select({ id: "filter-confirmation" }, [["", "any"], ...Object.keys(VERDICT)], "", set("confirmation"))),
    h("label", {}, "island ", h("input", { id: "filter-island", type: "number", min: 0, class: "island", onchange: (e) => set("island")(e.target.value) })),
    h("label", {}, "name ", h("input", { id: "filter-q", type: "search", placeholder: "name or #id", oninput: (e) => {
      clearTimeout(typing);
      typing = setTimeout(() => set("q")(e.target.value.trim()), 250);
    } })),
    h("label", { class: "muted" }, h("input", { type: "checkbox", id: "scored-only", onchange: (e) => set("scoredOnly")(e.target.checked) }), " scored only"),
    h("label", { class: "muted" }, h("input", { type: "checkbox", id: "per-task", onchange: (e) => set("tasks")(e.target.checked) }), " per-task columns"));
  ctx.own(() => clearTimeout(typing));
  const element = h("section", { class: "card board" },
    h("h2", {}, "Leaderboard"), metricsLine, filters,
    h("div", { class: "board-actions" }, compareButton, downloads), board);

  function updateCompare() {
    compareButton.disabled = selected.size < 2 || selected.size > MAX_COMPARE;
    compareButton.textContent = selected.size ? `Compare ${selected.size}` : "Compare";
    compareButton.title = `tick 2 to ${MAX_COMPARE} rows`;
  }
  updateCompare();

  function sortBy(key) {
    if (state.sort === key) state.order = (state.order || (DESC_FIRST.has(key) ? "desc" : "asc")) === "desc" ? "asc" : "desc";
    else { state.sort = key; state.order = ""; }
    state.offset = 0;
    load().catch(onError);
  }

  async function load() {
    const query = boardQuery(state);
    const lb = await api(`api/campaigns/${id}/leaderboard?${query}`);
    if (!ctx.alive) return;
    metricsLine.replaceChildren(h("span", {}, metricsText(lb.metrics)));
    downloads.replaceChildren(
      downloadLink(`api/campaigns/${id}/leaderboard.csv?${query}`, "CSV", `campaign-${id}-leaderboard.csv`),
      " ",
      downloadLink(`api/campaigns/${id}/leaderboard.json?${query}`, "JSON", `campaign-${id}-leaderboard.json`));
    board.replaceChildren(table(lb));
  }

  function header(label, key, extra) {
    if (!key) return h("th", extra || {}, label);
    const active = state.sort === key;
    const order = active ? (state.order || (DESC_FIRST.has(key) ? "desc" : "asc")) : null;
    return h("th", { ...extra, class: `sortable ${active ? "sorted" : ""}`, "aria-sort": order ? `${order}ending` : "none", "data-sort": key },
      h("button", { type: "button", class: "sort", onclick: () => sortBy(key) }, label, order ? (order === "desc" ? " ▼" : " ▲") : ""));
  }

  function table(lb) {
    if (!lb.rows.length) {
      const filtered = boardQuery({ ...state, scoredOnly: false, tasks: false, sort: "rank", order: "" }, { paged: false }) !== "";
      if (filtered) return h("p", { class: "muted" }, "No candidate matches these filters.");
      return h("p", { class: "muted" }, state.scoredOnly ? "No candidate has a score yet." : "No candidates on the leaderboard yet.");
    }
    const columns = state.tasks ? lb.columns || [] : [];
    const heldOutColumn = (key) => lb.rows.some((r) => r.tasks && r.tasks[key] && r.tasks[key].held_out);
    const rows = lb.rows.map((r) => {
      const baseline = r.origin === "baseline";
      const tick = h("input", { type: "checkbox", class: "pick", "aria-label": `compare #${idOf(r.id)}`, checked: selected.has(idOf(r.id)), onchange: (e) => {
        if (e.target.checked) selected.add(idOf(r.id)); else selected.delete(idOf(r.id));
        updateCompare();
      } });
      return h("tr", { class: baseline ? "baseline" : null, "data-id": idOf(r.id) },
        h("td", {}, tick),
        h("td", { class: "num" }, r.rank ?? "—"),
        h("td", { class: "num" }, candidateLink(r.id)),
        h("td", { class: "name" }, candidateLink(r.id, nameText(r.name)), baseline ? [" ", badge("baseline", "baseline-mark")] : null),
        h("td", {}, r.origin),
        h("td", { class: "num" }, r.island ?? "—"),
        h("td", { title: metricName(lb.metrics, r.stage) }, r.stage ?? "—"),
        h("td", { class: "num score" }, fmtInterval(r.score, r.score_low, r.score_high, r.seeds)),
        h("td", { class: "num held-out" }, fmtInterval(r.held_out_score, r.held_out_low, r.held_out_high, r.held_out_seeds)),
        h("td", { class: "num fresh" }, fmtInterval(r.fresh_held_out_score, r.fresh_held_out_low, r.fresh_held_out_high, r.fresh_held_out_seeds)),
        columns.map((key) => {
          const t = (r.tasks || {})[key];
          return h("td", { class: "num task", "data-task": key }, t ? fmtInterval(t.score, t.low, t.high, t.n) : "—");
        }),
        h("td", { class: "verdict" }, badge(VERDICT[r.confirmation] || "unconfirmed", "verdict")),
        h("td", {}, badge(r.status, "status")));
    });
    const last = Math.min(lb.offset + lb.rows.length, lb.total);
    const go = (offset) => { state.offset = offset; load().catch(onError); };
    const pager = h("div", { class: "pager" },
      h("button", { type: "button", disabled: lb.offset <= 0, onclick: () => go(Math.max(0, lb.offset - lb.limit)) }, "← Previous"),
      h("span", { class: "muted" }, ` rows ${lb.offset + 1}–${last} of ${lb.total} `),
      h("button", { type: "button", disabled: last >= lb.total, onclick: () => go(lb.offset + lb.limit) }, "Next →"));
    return h("div", {},
      h("div", { class: "scroll" }, h("table", { class: "data leaderboard" },
        h("thead", {}, h("tr", {},
          h("th", {}, ""), header("rank", SORTS.rank), header("id", SORTS.id), header("name", SORTS.name), h("th", {}, "origin"),
          header("island", SORTS.island), header("stage", SORTS.stage),
          header("public score vs DPO [95%] n", SORTS.score, { title: "the stage's metric, named above the table" }),
          header("held-out", SORTS.held_out), header("held-out, fresh seeds", SORTS.fresh_held_out),
          columns.map((key) => h("th", { class: "task", title: heldOutColumn(key) ? "held-out task" : "public task" }, key)),
          h("th", {}, "verdict"), h("th", {}, "status"))),
        h("tbody", {}, rows))),
      pager);
  }

  return { element, load };
}

function metricName(metrics, stage) {
  const m = metrics && stage != null ? metrics[stage] : null;
  return m ? `${m.name}${m.description ? `: ${m.description}` : ""}` : null;
}

// "Score at bandit: frontier/area vs DPO · at tinylm: ..." — what each stage's score measures.
function metricsText(metrics) {
  const entries = Object.entries(metrics || {});
  if (!entries.length) return ["Score: the candidate's metric minus DPO's on the same seeds, at its highest stage."];
  return ["Score at ", entries.flatMap(([stage, m], i) => [i ? "; at " : "", h("b", {}, stage), `: ${m.name}`, m.description ? h("span", { class: "muted" }, ` (${m.description})`) : null]),
    ". Rank: highest stage reached, then the low end of the 95% interval (two lucky seeds do not top a steady gain)."];
}

// A link that downloads; with an API token set, the file is fetched with it (a plain link cannot
// send the Authorization header) and saved from memory.
function downloadLink(href, label, filename) {
  return h("a", { class: "button download", href, download: filename, onclick: async (event) => {
    if (!token()) return;
    event.preventDefault();
    const response = await fetch(href, { headers: { Authorization: `Bearer ${token()}` } });
    if (!response.ok) { event.target.after(errorBox(new ApiError(response.status, await response.text()), `${label} download refused`)); return; }
    const url = URL.createObjectURL(await response.blob());
    const a = h("a", { href: url, download: filename });
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 1000);
  } }, label);
}
