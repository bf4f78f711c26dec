// A campaign's live events: the stream (read with fetch, so it can carry the API token), the log,
// the counts by kind and the engine's start-up phase. Every event asks the campaign view to refresh
// (header, counts, buttons, board: throttled there). It does not draw the summary or the board.

import { REFRESH_MS, api, badge, budgetText, fmtClock, fmtNumber, h, idOf, token } from "./core.js";

const LOG_SIZE = 60; // events kept in the live log

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

// The engine's phase in words ("starting the evaluation backend…"), from a `phase` event's
// detail (or its name) or the campaign's `live.phase`.
const PHASES = {
  backend: "starting the evaluation backend (Ray) and the sandbox",
  baselines: "validating the baselines",
  reference: "running DPO and the baselines",
  proposing: "proposing candidates while their evaluations run",
  finishing: "finishing the queued evaluations",
  stopping: "stopping the workers",
};
export function phaseText(phase) {
  if (!phase) return "";
  const text = PHASES[phase] || String(phase).replace(/_/g, " ");
  return /[.…]$/.test(text) ? text : `${text}…`;
}

// A one-line summary of an event's payload: a budget as the budget line, nested objects flattened
// one level as key.sub=value, scalars as key=value.
export function eventSummary(kind, payload) {
  if (!payload || typeof payload !== "object") return payload == null ? "" : String(payload);
  if (kind === "budget" && (payload.used || payload.limits)) return budgetText(payload);
  if (kind === "phase") return phaseText(payload.detail ?? payload.phase);
  const parts = [];
  const value = (v) => (typeof v === "number" ? fmtNumber(v) : Array.isArray(v) ? v.map(value).join(",") : String(v));
  for (const [k, v] of Object.entries(payload)) {
    if (v === null || v === undefined) continue;
    if (typeof v === "object" && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v)) if (v2 !== null && typeof v2 !== "object") parts.push(`${k}.${k2}=${value(v2)}`);
    } else if (!Array.isArray(v) || v.every((x) => typeof x !== "object")) parts.push(`${k}=${value(v)}`);
  }
  return parts.join(" ").slice(0, 240);
}

// Follows campaign `id`'s events into the given elements; `refresh()` is called on every event.
// The stream is followed only while the campaign can still move (RUNNING or PENDING). A replayed
// history can hold an old `finish` (a pause, then a resume), so after `finish`, or when the
// stream breaks, the campaign's status decides: follow on past the last event seen, or stay
// closed (a stopped campaign's stream would otherwise be retried forever).
export function followEvents(ctx, id, { liveState, counters, log, phase, refresh }) {
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
      badge(kind, "kind"), " ", eventSummary(kind, event.payload)));
    while (log.children.length > LOG_SIZE) log.lastElementChild.remove();
    if (kind === "phase") phase.textContent = `engine: ${eventSummary(kind, event.payload)}`;
    else if (kind === "finish") phase.textContent = "";
    refresh();
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
  return { connect };
}
