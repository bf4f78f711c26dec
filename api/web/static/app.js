// lossforge web page: one page, hash routes, everything read from the JSON API of the same server.
//
//   #/                 campaigns, and the form that starts one
//   #/campaigns/ID     a campaign: live events, controls, leaderboard, plots
//   #/candidates/ID    a candidate: code, diff, lineage, loss curve, evaluations, export
//
// Safety: names, thoughts and reasons are written by an LLM. Every value from the API goes into the
// page as text (textContent, via h() below) or, for plotly, HTML-escaped; the one exception is
// `code_html`, which pygments escaped on the server. No URL leaves this origin: the page works
// offline. Plain browser JavaScript, no build step.
"use strict";

(() => {
  const TOKEN_KEY = "lossforge.token";
  const REFRESH_MS = 2000; // at most one leaderboard/plot refresh per this interval
  const LOG_SIZE = 60; // events kept in the live log
  const PAGE_SIZE = 25; // leaderboard rows per page
  const FINAL = new Set(["CANCELLED", "FINISHED", "FAILED"]);
  const REFRESH_ON = new Set(["evaluation", "stage_done", "finish"]);
  const KEY_METRICS = ["reward/normalized", "kl/ref", "rewards/accuracies", "rewards/margins"];
  const PLOT_CONFIG = { displaylogo: false, responsive: true };
  const PLOT_FONT = { family: "system-ui, sans-serif", size: 12 };

  // -- DOM ------------------------------------------------------------------------------------

  // h("a", {href: "#/"}, "text", child, [more]) -> element; strings always become text nodes.
  function h(tag, attrs, ...children) {
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
  function fill(el, ...children) {
    el.append(...h("div", {}, ...children).childNodes);
    return el;
  }

  // For plotly labels, which interpret a little HTML: escape it so names show as typed.
  function plotText(value) {
    return String(value ?? "").replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
  }

  const idOf = (value) => Number.parseInt(value, 10); // ids go into URLs only as integers
  const candidateLink = (id, label) => h("a", { href: `#/candidates/${idOf(id)}` }, label ?? `#${idOf(id)}`);
  const campaignLink = (id, label) => h("a", { href: `#/campaigns/${idOf(id)}` }, label ?? `#${idOf(id)}`);
  const badge = (text, kind) => h("span", { class: `badge ${kind || ""} ${String(text).toLowerCase()}` }, text);

  function fmtScore(score, spread) {
    if (score == null) return "—";
    const s = `${score >= 0 ? "+" : ""}${Number(score).toFixed(4)}`;
    return spread == null ? s : `${s} ± ${Number(spread).toFixed(4)}`;
  }
  // `+0.0123 [−0.0040, +0.0286] n=4`: a paired score vs DPO with its 95% interval and n.
  function fmtInterval(score, low, high, n) {
    if (score == null) return "—";
    const f = (x) => `${x >= 0 ? "+" : ""}${Number(x).toFixed(4)}`;
    return low == null || high == null ? `${f(score)} n=${n ?? 0}` : `${f(score)} [${f(low)}, ${f(high)}] n=${n}`;
  }
  const VERDICT = { confirmed: "confirmed", overfit: "overfit", unconfirmed: "unconfirmed" };
  function fmtRho(c) {
    if (!c || c.rho == null) return `— (n=${c ? c.n : 0}, too few candidates)`;
    const f = (x) => `${x >= 0 ? "+" : ""}${Number(x).toFixed(2)}`;
    return c.low == null ? `${f(c.rho)} (n=${c.n})` : `${f(c.rho)} [${f(c.low)}, ${f(c.high)}] (n=${c.n})`;
  }
  function fmtNumber(x) {
    if (typeof x !== "number") return String(x);
    if (Number.isInteger(x)) return String(x);
    return Math.abs(x) >= 1000 || (x !== 0 && Math.abs(x) < 1e-3) ? x.toExponential(2) : x.toPrecision(4);
  }
  function fmtTime(iso) {
    if (!iso) return "—";
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
  }
  function fmtClock(iso) {
    const d = new Date(iso);
    return Number.isNaN(d.getTime()) ? "" : d.toLocaleTimeString();
  }
  function fmtSeconds(s) {
    s = Math.round(Number(s) || 0);
    if (s < 60) return `${s} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
    return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  }
  function budgetText(budget) {
    const used = (budget && budget.used) || {};
    const limits = (budget && budget.limits) || {};
    const of = (key) => (limits[key] != null ? ` / ${fmtNumber(limits[key])}` : "");
    const parts = [];
    if (used.candidates != null) parts.push(`${fmtNumber(used.candidates)}${of("candidates")} candidates`);
    else if (limits.candidates != null) parts.push(`limit ${fmtNumber(limits.candidates)} candidates`);
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
  function countsText(counts) {
    const entries = Object.entries(counts || {}).filter(([, n]) => n > 0).sort();
    const total = entries.reduce((sum, [, n]) => sum + n, 0);
    return [String(total), entries.map(([k, n]) => `${k.toLowerCase()} ${n}`).join(", ")];
  }

  // -- API ------------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(status, detail) {
      super(typeof detail === "string" ? detail : `HTTP ${status}`);
      this.status = status;
      this.detail = detail;
    }
  }

  const token = () => (localStorage.getItem(TOKEN_KEY) || "").trim();

  async function api(path, { method = "GET", body, contentType } = {}) {
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
  function errorLines(err) {
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
  function errorBox(err, title) {
    return h("div", { class: "errors", role: "alert" },
      title ? h("strong", {}, title) : null,
      h("ul", {}, errorLines(err).map((line) => h("li", {}, line))));
  }

  // -- routing --------------------------------------------------------------------------------

  // Each view gets a context; leaving the view runs its cleanups (timers, streams, plots) and any
  // still-loading view sees ctx.alive turn false.
  let current = null;
  function newContext() {
    const ctx = { alive: true, cleanups: [] };
    ctx.own = (fn) => (ctx.alive ? ctx.cleanups.push(fn) : fn());
    return ctx;
  }

  async function route() {
    if (current) {
      current.alive = false;
      for (const fn of current.cleanups.splice(0)) { try { fn(); } catch (err) { console.error(err); } }
    }
    const ctx = (current = newContext());
    const path = location.hash.replace(/^#/, "") || "/";
    const view = h("div", { class: "view" });
    document.getElementById("main").replaceChildren(view);
    let m;
    try {
      if ((m = path.match(/^\/campaigns\/(\d+)\/?$/))) await campaignView(view, ctx, idOf(m[1]));
      else if ((m = path.match(/^\/candidates\/(\d+)\/?$/))) await candidateView(view, ctx, idOf(m[1]));
      else if (path === "/") await campaignsView(view, ctx);
      else view.append(h("h1", {}, "Not found"), h("p", {}, "No page here. ", h("a", { href: "#/" }, "Campaigns")));
    } catch (err) {
      if (ctx.alive) view.append(errorBox(err, "Could not load this page"));
    }
  }

  function plot(ctx, div, traces, layout) {
    const full = { font: PLOT_FONT, margin: { l: 60, r: 16, t: 48, b: 48 }, height: 340, ...layout };
    // Titles sit top left, clear of the mode bar (top right).
    if (full.title) full.title = { x: 0, xanchor: "left", xref: "paper", font: { size: 14 }, ...full.title };
    const draw = div.dataset.drawn ? Plotly.react : Plotly.newPlot;
    if (!div.dataset.drawn) ctx.own(() => Plotly.purge(div));
    div.dataset.drawn = "1";
    return draw(div, traces, full, PLOT_CONFIG);
  }

  // fn() at most once per `ms`, never two at once; calls in between fold into one trailing call.
  function throttle(fn, ms) {
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

  // -- #/ campaigns ---------------------------------------------------------------------------

  async function campaignsView(view, ctx) {
    document.title = "Campaigns · lossforge";
    const list = h("div", { id: "campaigns" });
    fill(view, h("h1", {}, "Campaigns"), list, startForm());
    const load = async () => {
      const campaigns = await api("api/campaigns");
      if (ctx.alive) list.replaceChildren(campaignsTable(campaigns));
      return campaigns;
    };
    const campaigns = await load();
    // Poll while something is live, so counts and statuses move without a reload.
    if (campaigns.some((c) => !FINAL.has(c.status))) {
      const timer = setInterval(() => load().catch(() => {}), 5000);
      ctx.own(() => clearInterval(timer));
    }
  }

  function campaignsTable(campaigns) {
    if (!campaigns.length) return h("p", { class: "muted" }, "No campaigns yet: start one below.");
    const rows = campaigns.map((c) => {
      const [total, breakdown] = countsText(c.counts);
      return h("tr", {},
        h("td", { class: "num" }, campaignLink(c.id)),
        h("td", {}, campaignLink(c.id, c.name)),
        h("td", {}, badge(c.status, "status"), c.running ? h("span", { class: "muted" }, " live") : null),
        h("td", {}, h("span", { class: "num" }, total), breakdown ? h("span", { class: "muted small" }, ` (${breakdown})`) : null),
        h("td", {}, budgetText(c.budget)),
        h("td", { title: c.created_at || "" }, fmtTime(c.created_at)));
    });
    return h("table", { class: "data" },
      h("thead", {}, h("tr", {}, ["id", "name", "status", "candidates", "budget used", "created"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows));
  }

  function startForm() {
    const textarea = h("textarea", { id: "spec", name: "spec", rows: 11, spellcheck: "false", "aria-label": "campaign spec" });
    const errors = h("div", { class: "form-errors" });
    const button = h("button", { type: "submit" }, "Start campaign");
    fetch("static/example-spec.yaml")
      .then((r) => (r.ok ? r.text() : ""))
      .then((text) => { if (!textarea.value) textarea.value = text; })
      .catch(() => {});
    async function submit(event) {
      event.preventDefault();
      errors.replaceChildren();
      button.disabled = true;
      const body = textarea.value;
      const json = /^\s*[{[]/.test(body); // JSON if it opens like JSON; YAML otherwise
      try {
        const created = await api("api/campaigns", {
          method: "POST", body, contentType: json ? "application/json" : "application/yaml",
        });
        location.hash = `#/campaigns/${idOf(created.id)}`;
      } catch (err) {
        errors.replaceChildren(errorBox(err, "The campaign was not started"));
      } finally {
        button.disabled = false;
      }
    }
    return h("form", { id: "start-form", class: "card", onsubmit: submit },
      h("h2", {}, "Start a campaign"),
      h("p", { class: "muted" }, "A campaign spec in YAML or JSON (sent as JSON when it starts with { or [)."),
      textarea, h("div", { class: "actions" }, button), errors);
  }

  // -- #/campaigns/ID -------------------------------------------------------------------------

  async function campaignView(view, ctx, id) {
    const campaign = await api(`api/campaigns/${id}`);
    if (!ctx.alive) return;
    document.title = `${campaign.name} · lossforge`;

    const title = h("h1", {});
    const summary = h("dl", { class: "facts" });
    const message = h("div", { class: "control-message", role: "status" });
    const control = (action, label) => h("button", {
      type: "button", class: `control ${action}`,
      onclick: async () => {
        if (action === "cancel" && !confirm("Cancel this campaign? It cannot be resumed.")) return;
        message.replaceChildren();
        try {
          const updated = await api(`api/campaigns/${id}/${action}`, { method: "POST" });
          renderSummary(updated);
          message.replaceChildren(h("p", { class: "ok" }, `${label}: the campaign is ${updated.status}`));
          if (action === "resume") connect();
          refresh();
        } catch (err) {
          message.replaceChildren(errorBox(err, `${label} refused`));
        }
      },
    }, label);
    const liveState = h("span", { class: "live-state muted" }, "connecting…");
    const counters = h("div", { class: "counters" });
    const log = h("ol", { class: "event-log", reversed: true });
    const refreshError = h("div", {});
    const bestPlot = h("div", { id: "plot-best", class: "plot" });
    const rewardPlot = h("div", { id: "plot-reward-kl", class: "plot" });
    const board = h("div", { id: "leaderboard" });

    fill(view,
      h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Campaigns"), ` / campaign ${id}`),
      title, summary,
      h("div", { class: "controls" }, control("pause", "Pause"), control("resume", "Resume"), control("cancel", "Cancel"), message),
      h("div", { class: "grid" },
        h("section", { class: "card plots" }, h("h2", {}, "Progress"), refreshError, h("div", { class: "plot-row" }, bestPlot, rewardPlot)),
        h("section", { class: "card live" }, h("h2", {}, "Events ", liveState), counters, log)),
      h("section", { class: "card" },
        h("h2", {}, "Leaderboard ",
          h("label", { class: "muted filter" },
            h("input", { type: "checkbox", id: "scored-only", onchange: (e) => {
              scoredOnly = e.target.checked;
              offset = 0;
              loadBoard().catch(showRefreshError);
            } }),
            " scored only")),
        board));

    let latest = campaign;
    function renderSummary(c) {
      latest = c;
      title.replaceChildren(`${c.name} `, badge(c.status, "status"));
      const [total, breakdown] = countsText(c.counts);
      const best = c.best
        ? [candidateLink(c.best.candidate_id, c.best.name), ` ${fmtScore(c.best.score, c.best.spread)} vs DPO at ${c.best.stage}`]
        : "—";
      const facts = [
        ["status", [c.status, c.reason ? ` — ${c.reason}` : ""]],
        ["candidates", [total, breakdown ? ` (${breakdown})` : ""]],
        ["best discovered", best],
        ["confirmed", c.confirmed ? `${c.confirmed} (beat DPO on held-out tasks, fresh seeds)` : "none: no discovery holds up on held-out tasks and fresh seeds yet"],
        ["proxy validity", Object.entries((c.validity || {}).public_vs_held_out || {}).map(([stage, r]) => `${stage}: Spearman(public, held-out) ${fmtRho(r)}`).join("; ") || "—"],
        ["stage agreement", Object.entries((c.validity || {}).between_stages || {}).map(([pair, r]) => `${pair}: ${fmtRho(r)}`).join("; ") || "—"],
        ["budget used", budgetText(c.budget)],
        ["stages", (c.stages || []).join(" → ") || "—"],
        ["seed", String(c.seed)],
        ["created", fmtTime(c.created_at)],
        ["finished", fmtTime(c.finished_at)],
      ];
      summary.replaceChildren(...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    }
    renderSummary(campaign);

    // Leaderboard, with its own page position; "scored only" leaves out rejected, duplicate,
    // failed and waiting candidates (ranks stay those of the whole board).
    let offset = 0;
    let scoredOnly = false;
    async function loadBoard() {
      const filter = scoredOnly ? "&scored=true" : "";
      const lb = await api(`api/campaigns/${id}/leaderboard?offset=${offset}&limit=${PAGE_SIZE}${filter}`);
      if (ctx.alive) board.replaceChildren(leaderboardTable(lb, (next) => { offset = next; loadBoard().catch(showRefreshError); }, scoredOnly));
    }
    async function loadSeries() {
      const series = await api(`api/campaigns/${id}/series`);
      if (!ctx.alive) return;
      drawBestOverTime(ctx, bestPlot, series, latest);
      drawRewardKl(ctx, rewardPlot, series);
    }
    function showRefreshError(err) { if (ctx.alive) refreshError.replaceChildren(errorBox(err, "Could not refresh")); }
    const refresh = throttle(async () => {
      if (!ctx.alive) return;
      try {
        const [c] = await Promise.all([api(`api/campaigns/${id}`), loadBoard(), loadSeries()]);
        if (!ctx.alive) return;
        renderSummary(c);
        refreshError.replaceChildren();
      } catch (err) { showRefreshError(err); }
    }, REFRESH_MS);
    ctx.own(refresh.cancel);
    refresh();

    // Live events. The stream is followed only while the campaign can still move (RUNNING or
    // PENDING). A replayed history can hold an old `finish` (a pause, then a resume), so after
    // `finish`, or when the stream breaks, the campaign's status decides: follow on past the last
    // event seen, or stay closed (a stopped campaign's stream would otherwise be retried forever).
    const seen = {};
    let lastEventId = 0;
    let source = null;
    let retry = null;
    const disconnect = () => {
      clearTimeout(retry);
      if (source) { source.close(); source = null; }
    };
    ctx.own(disconnect);
    function settle() {
      api(`api/campaigns/${id}`).then((c) => {
        if (!ctx.alive) return;
        if (c.status === "RUNNING" || c.status === "PENDING") {
          if (!source) { clearTimeout(retry); retry = setTimeout(connect, REFRESH_MS); }
        } else {
          disconnect();
          liveState.textContent = `stream closed: ${c.status}`;
        }
      }).catch(() => {}); // server unreachable: the browser keeps retrying the stream
    }
    function onEvent(message) {
      let event;
      try { event = JSON.parse(message.data); } catch { return; }
      const eventId = idOf(event.id ?? message.lastEventId);
      if (eventId <= lastEventId) return; // already shown (a reconnect may replay)
      lastEventId = eventId;
      const kind = String(event.kind || message.type);
      seen[kind] = (seen[kind] || 0) + 1;
      counters.replaceChildren(...Object.entries(seen).map(([k, n]) => h("span", { class: `counter ${k}` }, h("b", {}, String(n)), ` ${k.replace("_", " ")}`)));
      log.prepend(h("li", { class: `event ${kind}` },
        h("time", { datetime: event.created_at || "" }, fmtClock(event.created_at)), " ",
        badge(kind, "kind"), " ", eventSummary(event.payload)));
      while (log.children.length > LOG_SIZE) log.lastElementChild.remove();
      if (REFRESH_ON.has(kind)) refresh();
      if (kind === "finish") {
        disconnect();
        liveState.textContent = `stream closed: ${(event.payload && event.payload.status) || "finished"}`;
        settle();
      }
    }
    function connect() {
      if (source || !ctx.alive) return;
      const stream = streamEvents(`api/campaigns/${id}/events${lastEventId ? `?after=${lastEventId}` : ""}`, {
        onopen: () => { liveState.textContent = "live"; },
        onmessage: onEvent,
        onclose: () => {
          if (source !== stream) return; // closed on purpose
          source = null;
          liveState.textContent = "reconnecting…";
          settle(); // reconnects while the campaign runs
        },
      });
      source = stream;
    }
    connect();
  }

  // Server-sent events read with fetch rather than EventSource, which cannot send the
  // Authorization header a server with LOSSFORGE_API_READ_AUTH needs. Messages are separated by a
  // blank line; `event:`, `data:` and `id:` fields as in the SSE format; comments (":") ignored.
  // Returns { close() }; onclose runs when the server ends the stream or the connection fails.
  function streamEvents(url, { onopen, onmessage, onclose }) {
    const controller = new AbortController();
    let closed = false;
    const finish = () => { if (!closed) { closed = true; onclose(); } };
    (async () => {
      const headers = { Accept: "text/event-stream" };
      if (token()) headers.Authorization = `Bearer ${token()}`;
      const response = await fetch(url, { headers, signal: controller.signal });
      if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
      onopen();
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value.replace(/\r\n?/g, "\n");
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const message = { type: "message", data: [], lastEventId: "" };
          for (const line of block.split("\n")) {
            if (!line || line.startsWith(":")) continue;
            const colon = line.indexOf(":");
            const field = colon < 0 ? line : line.slice(0, colon);
            const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
            if (field === "data") message.data.push(text);
            else if (field === "event") message.type = text;
            else if (field === "id") message.lastEventId = text;
          }
          if (message.data.length && !closed) onmessage({ ...message, data: message.data.join("\n") });
        }
      }
    })().catch(() => {}).finally(finish);
    return { close() { closed = true; controller.abort(); } };
  }

  // A one-line summary of an event's payload: its scalar fields as key=value.
  function eventSummary(payload) {
    if (!payload || typeof payload !== "object") return payload == null ? "" : String(payload);
    return Object.entries(payload)
      .filter(([, v]) => v !== null && typeof v !== "object")
      .map(([k, v]) => `${k}=${typeof v === "number" ? fmtNumber(v) : v}`)
      .join(" ")
      .slice(0, 240);
  }

  function leaderboardTable(lb, goTo, scoredOnly) {
    if (!lb.rows.length) {
      return h("p", { class: "muted" }, scoredOnly ? "No candidate has a score yet." : "No candidates on the leaderboard yet.");
    }
    const rows = lb.rows.map((r) => {
      const baseline = r.origin === "baseline";
      return h("tr", { class: baseline ? "baseline" : null, "data-id": idOf(r.id) },
        h("td", { class: "num" }, r.rank ?? "—"),
        h("td", { class: "num" }, candidateLink(r.id)),
        h("td", {}, candidateLink(r.id, r.name), baseline ? [" ", badge("baseline", "baseline-mark")] : null),
        h("td", {}, r.origin),
        h("td", {}, r.stage ?? "—"),
        h("td", { class: "num score" }, fmtInterval(r.score, r.score_low, r.score_high, r.seeds)),
        h("td", { class: "num held-out" }, fmtInterval(r.held_out_score, r.held_out_low, r.held_out_high, r.held_out_seeds)),
        h("td", { class: "num fresh" }, fmtInterval(r.fresh_held_out_score, r.fresh_held_out_low, r.fresh_held_out_high, r.fresh_held_out_seeds)),
        h("td", { class: "verdict" }, badge(VERDICT[r.confirmation] || "unconfirmed", "verdict")),
        h("td", {}, badge(r.status, "status")));
    });
    const last = Math.min(lb.offset + lb.rows.length, lb.total);
    const pager = h("div", { class: "pager" },
      h("button", { type: "button", disabled: lb.offset <= 0, onclick: () => goTo(Math.max(0, lb.offset - lb.limit)) }, "← Previous"),
      h("span", { class: "muted" }, ` rows ${lb.offset + 1}–${last} of ${lb.total} `),
      h("button", { type: "button", disabled: last >= lb.total, onclick: () => goTo(lb.offset + lb.limit) }, "Next →"));
    return h("div", {},
      h("table", { class: "data leaderboard" },
        h("thead", {}, h("tr", {}, ["rank", "id", "name", "origin", "stage", "public vs DPO [95%] n", "held-out", "held-out, fresh seeds", "verdict", "status"].map((t) => h("th", {}, t)))),
        h("tbody", {}, rows)),
      pager);
  }

  function drawBestOverTime(ctx, div, series, campaign) {
    const points = (series.best_over_time || []).slice();
    // Carry the last best on to the campaign's end (or now, while it runs), without a marker.
    const ended = campaign.finished_at ? Date.parse(campaign.finished_at) : (FINAL.has(campaign.status) ? NaN : Date.now());
    const end = (ended - Date.parse(campaign.created_at)) / 1000;
    const last = points[points.length - 1];
    if (last && end > last.seconds) points.push({ ...last, seconds: end, carried: true });
    const traces = [{
      type: "scatter", mode: "lines+markers", name: "best", line: { shape: "hv", color: "#2563eb" },
      marker: { size: points.map((p) => (p.carried ? 0 : 7)) },
      x: points.map((p) => p.seconds), y: points.map((p) => p.score),
      text: points.map((p) => plotText(p.name)), customdata: points.map((p) => p.candidate_id),
      hovertemplate: "%{text}<br>%{y:+.4f} vs DPO at %{x:.0f} s<extra></extra>",
    }];
    plot(ctx, div, traces, {
      title: { text: `Best score vs DPO over time (${plotText(series.stage)})` },
      xaxis: { title: { text: "seconds since the campaign started" }, rangemode: "tozero" },
      yaxis: { title: { text: "score vs DPO" }, zeroline: false },
      showlegend: false,
      // DPO scores 0 by definition: the line to beat.
      shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0, y1: 0, line: { color: "#6b7280", dash: "dash", width: 1 } }],
      annotations: [
        { text: "DPO", showarrow: false, xref: "paper", x: 1, xanchor: "right", y: 0, yanchor: "bottom", font: { color: "#6b7280" } },
        ...(points.length ? [] : [{ text: "no scores yet", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }]),
      ],
    }).then(() => linkPoints(div));
  }

  function drawRewardKl(ctx, div, series) {
    const usable = (series.reward_kl || []).filter((p) => p.reward != null && p.kl != null);
    const trace = (points, baseline) => ({
      type: "scatter", mode: baseline ? "markers+text" : "markers", name: baseline ? "baselines" : "discovered",
      x: points.map((p) => p.kl), y: points.map((p) => p.reward),
      text: points.map((p) => plotText(p.name)), customdata: points.map((p) => p.candidate_id),
      textposition: "top center",
      marker: baseline
        ? { symbol: "diamond", size: 12, color: "#dc2626", line: { color: "#7f1d1d", width: 1 } }
        : { symbol: "circle", size: 8, color: "#2563eb", opacity: 0.75 },
      hovertemplate: "%{text}<br>KL %{x:.4g}, reward %{y:.4g}<extra></extra>",
    });
    plot(ctx, div, [trace(usable.filter((p) => !p.baseline), false), trace(usable.filter((p) => p.baseline), true)], {
      title: { text: "Reward vs KL of evaluated candidates" },
      xaxis: { title: { text: plotText(series.kl_metric || "KL") } },
      yaxis: { title: { text: plotText(series.reward_metric || "reward") } },
      legend: { x: 0.01, y: 0.99, bgcolor: "rgba(255,255,255,0.7)" },
    }).then(() => linkPoints(div));
  }

  // Clicking a point opens its candidate (customdata holds the id).
  function linkPoints(div) {
    if (div.dataset.linked) return;
    div.dataset.linked = "1";
    div.on("plotly_click", (data) => {
      const id = data.points && data.points[0] && data.points[0].customdata;
      if (id != null) location.hash = `#/candidates/${idOf(id)}`;
    });
  }

  // -- #/candidates/ID ------------------------------------------------------------------------

  async function candidateView(view, ctx, id) {
    const c = await api(`api/candidates/${id}`);
    if (!ctx.alive) return;
    document.title = `${c.name} · lossforge`;
    const row = c.row;
    const facts = [
      ["origin", c.origin],
      ["status", [badge(c.status, "status"), c.reason ? ` ${c.reason}` : ""]],
      ["score vs DPO", row ? `${fmtInterval(row.score, row.score_low, row.score_high, row.seeds)} at ${row.stage ?? "—"} (rank ${row.rank ?? "—"})` : "—"],
      ["held-out score", row ? fmtInterval(row.held_out_score, row.held_out_low, row.held_out_high, row.held_out_seeds) : "—"],
      ["held-out, fresh seeds", row ? fmtInterval(row.fresh_held_out_score, row.fresh_held_out_low, row.fresh_held_out_high, row.fresh_held_out_seeds) : "—"],
      ["verdict", row ? badge(VERDICT[row.confirmation] || "unconfirmed", "verdict") : "—"],
      ["parents", c.parent_ids && c.parent_ids.length ? c.parent_ids.flatMap((p, i) => [i ? ", " : "", candidateLink(p)]) : "—"],
      ["duplicate of", c.duplicate_of != null ? candidateLink(c.duplicate_of) : null],
      ["island", c.island],
      ["created", fmtTime(c.created_at)],
    ].filter(([, v]) => v != null);

    const code = h("div", { id: "code", class: "hl code" });
    if (c.code_html) code.innerHTML = c.code_html; // pygments output: escaped on the server
    else code.append(h("pre", {}, c.canonical_code || c.source || ""));
    const curve = h("div", { id: "plot-loss", class: "plot wide" });

    fill(view,
      h("p", { class: "crumbs" }, h("a", { href: "#/" }, "Campaigns"), " / ", campaignLink(c.campaign_id, `campaign ${idOf(c.campaign_id)}`), ` / candidate ${idOf(c.id)}`),
      h("h1", {}, h("span", { class: "candidate-name" }, c.name), " ", h("span", { class: "muted" }, `#${idOf(c.id)}`),
        c.origin === "baseline" ? [" ", badge("baseline", "baseline-mark")] : null),
      h("div", { class: "actions" },
        h("a", { class: "button export", href: `api/candidates/${idOf(c.id)}/export`, download: true }, "Export module")),
      h("dl", { class: "facts" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
      c.thought ? h("section", { class: "card" }, h("h2", {}, "Thought"), h("p", { class: "thought" }, c.thought)) : null,
      h("section", { class: "card" }, h("h2", {}, "Code"), code),
      c.diff ? h("section", { class: "card" }, h("h2", {}, "Diff against parent ", candidateLink(c.parent_ids[0])), diffView(c.diff)) : null,
      h("section", { class: "card" }, h("h2", {}, "Loss and gradient vs the margin β·Δ, next to DPO"), curve),
      h("section", { class: "card" }, h("h2", {}, "Lineage"), lineageView(c)),
      h("section", { class: "card" }, h("h2", {}, "Evaluations"), evaluationsTable(c.evaluations || [])),
      h("section", { class: "card" }, h("h2", {}, "Verdict and provenance"),
        h("details", {}, h("summary", {}, "sandbox verdict"), h("pre", {}, JSON.stringify(c.verdict, null, 2))),
        h("details", {}, h("summary", {}, "provenance"), h("pre", {}, JSON.stringify(c.provenance, null, 2)))));

    try {
      const lc = await api(`api/candidates/${id}/loss-curve`);
      if (ctx.alive) drawLossCurve(ctx, curve, lc, c.name);
    } catch (err) {
      if (!ctx.alive) return;
      curve.classList.remove("plot"); // no room kept for a plot that will not come
      curve.replaceChildren(err instanceof ApiError && err.status === 409
        ? h("p", { class: "muted" }, `No loss curve: ${errorLines(err).join("; ")}`)
        : errorBox(err, "Could not load the loss curve"));
    }
  }

  function diffView(diff) {
    const pre = h("pre", { class: "diff" });
    for (const line of String(diff).replace(/\n$/, "").split("\n")) {
      let kind = "ctx";
      if (line.startsWith("+++") || line.startsWith("---")) kind = "meta";
      else if (line.startsWith("@@")) kind = "hunk";
      else if (line.startsWith("+")) kind = "add";
      else if (line.startsWith("-")) kind = "del";
      pre.append(h("span", { class: `line ${kind}` }, line), "\n");
    }
    return pre;
  }

  function lineageView(c) {
    const ancestors = (c.lineage || []).filter((a) => idOf(a.id) !== idOf(c.id));
    if (!ancestors.length) return h("p", { class: "muted" }, "No ancestors: written from scratch or a baseline.");
    return h("ul", { class: "lineage" }, ancestors
      .slice().sort((a, b) => a.depth - b.depth || a.id - b.id)
      .map((a) => h("li", { style: `margin-left: ${Math.min(a.depth, 12) * 1.2}em` },
        h("span", { class: "muted" }, `depth ${a.depth} `), candidateLink(a.id), " ", candidateLink(a.id, a.name), " ",
        h("span", { class: "muted" }, a.origin), " ", badge(a.status, "status"))));
  }

  function metricsText(metrics) {
    const keys = Object.keys(metrics || {});
    const shown = KEY_METRICS.filter((k) => k in metrics);
    for (const k of keys) if (shown.length < 4 && !shown.includes(k)) shown.push(k);
    return shown.map((k) => `${k} ${fmtNumber(metrics[k])}`).join(", ");
  }

  function evaluationsTable(evaluations) {
    if (!evaluations.length) return h("p", { class: "muted" }, "No evaluations.");
    const rows = evaluations.map((e) => h("tr", { class: e.held_out ? "held-out" : null },
      h("td", {}, e.stage, e.held_out ? [" ", badge("held-out", "held-out-mark")] : null),
      h("td", {}, e.task),
      h("td", { class: "num" }, e.attempt ? `${e.seed} (attempt ${e.attempt + 1})` : e.seed),
      h("td", {}, badge(e.status, "status")),
      h("td", { class: "num" }, e.score == null ? "—" : fmtScore(e.score)),
      h("td", { class: "small", title: JSON.stringify(e.metrics || {}) }, metricsText(e.metrics || {})),
      h("td", { class: "small reason" }, e.reason || "")));
    return h("table", { class: "data evaluations" },
      h("thead", {}, h("tr", {}, ["stage", "task", "seed", "status", "score", "key metrics", "reason"].map((t) => h("th", {}, t)))),
      h("tbody", {}, rows));
  }

  function drawLossCurve(ctx, div, lc, name) {
    const line = (y, label, axis, dpo, legend) => ({
      type: "scatter", mode: "lines", x: lc.margin, y, name: label, xaxis: `x${axis}`, yaxis: `y${axis}`,
      legendgroup: label, showlegend: legend,
      line: dpo ? { color: "#6b7280", dash: "dash" } : { color: "#2563eb", width: 2.5 },
    });
    const label = plotText(name);
    plot(ctx, div, [
      line(lc.loss, label, "", false, true), line(lc.dpo.loss, "DPO", "", true, true),
      line(lc.grad, label, "2", false, false), line(lc.dpo.grad, "DPO", "2", true, false),
    ], {
      grid: { rows: 1, columns: 2, pattern: "independent" },
      title: { text: `β = ${fmtNumber(lc.beta)}` },
      xaxis: { title: { text: "margin β·Δ" } }, yaxis: { title: { text: "loss" } },
      xaxis2: { title: { text: "margin β·Δ" } }, yaxis2: { title: { text: "d loss / d margin" } },
      legend: { orientation: "h", y: -0.25 },
    });
  }

  // -- start ----------------------------------------------------------------------------------

  function setupToken() {
    const input = document.getElementById("token");
    input.value = token();
    input.addEventListener("change", () => {
      const value = input.value.trim();
      if (value) localStorage.setItem(TOKEN_KEY, value);
      else localStorage.removeItem(TOKEN_KEY);
    });
  }

  setupToken();
  window.addEventListener("hashchange", route);
  route();
})();
