// The LLM calls behind a candidate, on its page: each call's messages (collapsed), reply, model,
// tokens, cost, latency and error; repair turns marked. For a candidate no model wrote, the API's
// note. The API never returns a key, and this module shows only what the API returns, as text.

import { ApiError, api, errorBox, fmtDollars, fmtNumber, h, idOf, setChildren } from "./core.js";

export function transcriptSection(ctx, c) {
  const box = h("div", { id: "transcript" }, h("p", { class: "muted" }, "Loading…"));
  load(ctx, box, c).catch((err) => { if (ctx.alive) box.replaceChildren(errorBox(err, "Could not load the transcript")); });
  return h("section", { class: "card" }, h("h2", {}, "Transcript"), box);
}

async function load(ctx, box, c) {
  let t;
  try {
    t = await api(`api/candidates/${idOf(c.id)}/transcript`);
  } catch (err) {
    // A server from before transcripts answers 404 with FastAPI's "Not Found" (no candidate named).
    if (err instanceof ApiError && err.status === 404 && err.detail === "Not Found") {
      if (ctx.alive) box.replaceChildren(h("p", { class: "muted" }, "This server does not serve transcripts."));
      return;
    }
    throw err;
  }
  if (!ctx.alive) return;
  const calls = t.calls || [];
  if (!calls.length) {
    box.replaceChildren(h("p", { class: "muted note" }, t.note || (c.origin === "llm" ? "No call recorded for this candidate." : `Not written by a model (origin ${c.origin}).`)));
    return;
  }
  const total = (key) => calls.reduce((sum, call) => sum + (Number(call[key]) || 0), 0);
  const repairs = calls.filter((call) => call.purpose && /repair/i.test(call.purpose)).length;
  setChildren(box,
    h("p", { class: "muted small" },
      `${calls.length} call${calls.length > 1 ? "s" : ""}`, repairs ? ` (${repairs} repair turn${repairs > 1 ? "s" : ""})` : "",
      ` · ${fmtNumber(total("prompt_tokens"))} prompt + ${fmtNumber(total("completion_tokens"))} completion tokens`,
      ` · ${fmtDollars(total("cost_usd"))}`, t.prompt_hash ? ` · prompt ${t.prompt_hash}` : ""),
    t.note ? h("p", { class: "muted note" }, t.note) : null,
    calls.map((call, i) => callView(call, i)));
}

function callView(call, index) {
  const facts = [
    ["model", call.model],
    ["purpose", call.purpose],
    ["tokens", `${fmtNumber(call.prompt_tokens ?? 0)} prompt + ${fmtNumber(call.completion_tokens ?? 0)} completion`],
    ["cost", fmtDollars(call.cost_usd)],
    ["latency", call.latency_s == null ? "—" : `${Number(call.latency_s).toFixed(2)} s`],
  ];
  const messages = call.messages || [];
  return h("article", { class: `call${call.wrote_candidate ? " wrote" : ""}`, "data-call": idOf(call.id) },
    h("h3", {}, `Call ${index + 1}`, call.purpose && /repair/i.test(call.purpose) ? " · repair turn" : "",
      call.wrote_candidate ? " · wrote this candidate" : ""),
    h("dl", { class: "facts call-facts" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", { class: k }, v ?? "—")])),
    h("details", { class: "prompt" }, h("summary", {}, `prompt: ${messages.length} message${messages.length === 1 ? "" : "s"}`),
      messages.map((m) => h("div", { class: `message ${String(m.role)}` }, h("div", { class: "role muted small" }, m.role), h("pre", {}, m.content)))),
    call.error ? h("div", { class: "errors" }, h("strong", {}, "error "), call.error) : null,
    call.reply != null ? h("div", { class: "reply" }, h("div", { class: "muted small" }, "reply"), h("pre", {}, call.reply)) : null);
}
