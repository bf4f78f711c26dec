// #/compare/ID,ID[,...] : two to six candidates side by side: their scores, per-task metrics with
// intervals, the loss and gradient curves overlaid, and each one's code diff against the first.

import {
  ApiError, api, badge, campaignLink, candidateLink, crumbs, errorLines, fill, fmtInterval, fmtNumber,
  h, idOf, nameText,
} from "./core.js";
import { diffView } from "./candidate.js";
import { drawLossCurves } from "./curves.js";

export async function compareView(view, ctx, ids) {
  document.title = `Compare ${ids.map((i) => `#${i}`).join(", ")} · lossforge`;
  const data = await api(`api/compare?ids=${ids.join(",")}`);
  if (!ctx.alive) return;
  const candidates = data.candidates || [];
  const curve = h("div", { id: "plot-compare", class: "plot wide" });
  const first = candidates[0];
  fill(view,
    crumbs(first ? campaignLink(first.campaign_id, `campaign ${idOf(first.campaign_id)}`) : null, "compare"),
    h("h1", {}, "Compare ", candidates.flatMap((c, i) => [i ? " · " : "", candidateLink(c.id, nameText(c.name))])),
    h("section", { class: "card" }, h("h2", {}, "Scores"), h("div", { class: "scroll" }, summaryTable(candidates))),
    h("section", { class: "card" }, h("h2", {}, "Per task (vs DPO, 95% interval, n)"), h("div", { class: "scroll" }, tasksTable(candidates))),
    h("section", { class: "card" }, h("h2", {}, "Loss and gradient vs the margin β·Δ, overlaid"), curve),
    h("section", { class: "card diffs" }, h("h2", {}, "Code, each against ", candidateLink(first.id, nameText(first.name))),
      (data.diffs || []).map((d) => h("div", { class: "compare-diff", "data-other": idOf(d.other) },
        h("h3", {}, candidateLink(d.other), " vs ", candidateLink(d.base)),
        d.diff ? diffView(d.diff) : h("p", { class: "muted" }, "Same code.")))));

  const curves = await Promise.all(candidates.map(async (c) => {
    try { return { name: `#${idOf(c.id)} ${c.name}`, lc: await api(`api/candidates/${idOf(c.id)}/loss-curve`) }; } catch (err) {
      if (err instanceof ApiError && err.status === 409) return { name: c.name, missing: errorLines(err).join("; ") };
      throw err;
    }
  }));
  if (!ctx.alive) return;
  const drawn = curves.filter((x) => x.lc);
  const missing = curves.filter((x) => x.missing);
  if (drawn.length) await drawLossCurves(ctx, curve, drawn);
  else curve.classList.remove("plot");
  if (missing.length) curve.after(h("p", { class: "muted small" }, missing.map((m) => `No curve for ${m.name}: ${m.missing}`).join(" · ")));
}

function summaryTable(candidates) {
  const rows = candidates.map((c) => {
    const r = c.row;
    return h("tr", { "data-id": idOf(c.id) },
      h("td", { class: "num" }, candidateLink(c.id)),
      h("td", { class: "name" }, candidateLink(c.id, nameText(c.name))),
      h("td", {}, c.origin),
      h("td", {}, badge(c.status, "status")),
      h("td", {}, r ? r.stage ?? "—" : "—"),
      h("td", { class: "num score" }, r ? fmtInterval(r.score, r.score_low, r.score_high, r.seeds) : "—"),
      h("td", { class: "num held-out" }, r ? fmtInterval(r.held_out_score, r.held_out_low, r.held_out_high, r.held_out_seeds) : "—"),
      h("td", {}, r ? badge(r.confirmation, "verdict") : "—"));
  });
  return h("table", { class: "data compare-scores" },
    h("thead", {}, h("tr", {}, ["id", "name", "origin", "status", "stage", "public vs DPO [95%] n", "held-out", "verdict"].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows));
}

// One row per stage/task, one column per candidate: score [low, high] n, reward and KL beneath.
function tasksTable(candidates) {
  const keys = [];
  const seen = new Set();
  for (const c of candidates) {
    for (const t of c.tasks || []) {
      const key = `${t.stage}/${t.task}`;
      if (!seen.has(key)) { seen.add(key); keys.push([key, t.held_out]); }
    }
  }
  if (!keys.length) return h("p", { class: "muted" }, "No task has an evaluation yet.");
  const cell = (c, key) => {
    const t = (c.tasks || []).find((x) => `${x.stage}/${x.task}` === key);
    if (!t) return h("td", { class: "num" }, "—");
    const extra = [t.reward != null ? `reward ${fmtNumber(t.reward)}` : null, t.kl != null ? `KL ${fmtNumber(t.kl)}` : null].filter(Boolean).join(", ");
    return h("td", { class: "num" }, fmtInterval(t.score, t.low, t.high, t.n), extra ? h("div", { class: "muted small" }, extra) : null);
  };
  return h("table", { class: "data compare-tasks" },
    h("thead", {}, h("tr", {}, h("th", {}, "stage/task"), candidates.map((c) => h("th", {}, `#${idOf(c.id)} `, nameText(c.name))))),
    h("tbody", {}, keys.map(([key, held]) => h("tr", { class: held ? "held-out" : null, "data-task": key },
      h("td", {}, key, held ? [" ", badge("held-out", "held-out-mark")] : null),
      candidates.map((c) => cell(c, key))))));
}
