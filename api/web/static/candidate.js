// #/candidates/ID : a candidate's summary line, scores, code, diff, loss curve, training curves,
// the LLM call that wrote it, lineage, evaluations and provenance (collapsed). A duplicate says
// so and what it duplicates; an unscored candidate shows no score.

import {
  ApiError, VERDICT, api, badge, campaignLink, candidateLink, crumbs, errorBox, errorLines, fill, fmtInterval,
  fmtNumber, fmtScore, fmtTime, h, idOf, nameText, select,
} from "./core.js";
import { drawLossCurves, drawTrainingCurves, runLabel } from "./curves.js";
import { transcriptSection } from "./transcript.js";

const KEY_METRICS = ["reward/normalized", "kl/ref", "rewards/accuracies", "rewards/margins"];
const NARROW = 700; // px: plots stack their panels below this width

// One line that is true for this status: the API's `summary`, or the same from the fields.
export function summaryLine(c) {
  if (c.summary) return c.summary;
  if (c.status === "DUPLICATE") {
    return `duplicate of ${c.duplicate_of != null ? `#${idOf(c.duplicate_of)}` : "an earlier candidate"} (same behaviour): not trained`;
  }
  if (c.status === "REJECTED") return `rejected: ${c.reason || "no reason given"}`;
  const row = c.row;
  if (row && row.score != null) return `scored at ${row.stage}, rank ${row.rank}`;
  return c.reason ? `${c.status.toLowerCase()}: ${c.reason}` : c.status.toLowerCase();
}

function scoreFacts(c) {
  const row = c.row;
  if (!row || row.score == null) return [["score vs DPO", h("span", { class: "muted" }, "not scored")]];
  return [
    ["score vs DPO", `${fmtInterval(row.score, row.score_low, row.score_high, row.seeds)} at ${row.stage} (rank ${row.rank})`],
    ["held-out score", fmtInterval(row.held_out_score, row.held_out_low, row.held_out_high, row.held_out_seeds)],
    ["held-out, fresh seeds", fmtInterval(row.fresh_held_out_score, row.fresh_held_out_low, row.fresh_held_out_high, row.fresh_held_out_seeds)],
    ["verdict", badge(VERDICT[row.confirmation] || "unconfirmed", "verdict")],
  ];
}

export async function candidateView(view, ctx, id) {
  const c = await api(`api/candidates/${id}`);
  if (!ctx.alive) return;
  document.title = `${c.name} · lossforge`;
  const duplicate = c.status === "DUPLICATE";
  const facts = [
    ["summary", h("span", { class: "summary" }, summaryLine(c))],
    ["origin", c.origin],
    ["status", [badge(c.status, "status"), c.reason && !duplicate ? ` ${c.reason}` : ""]],
    ...scoreFacts(c),
    ["parents", c.parent_ids && c.parent_ids.length ? c.parent_ids.flatMap((p, i) => [i ? ", " : "", candidateLink(p)]) : "—"],
    ["duplicate of", c.duplicate_of != null ? [candidateLink(c.duplicate_of), " (not trained)"] : null],
    ["island", c.island],
    ["created", fmtTime(c.created_at)],
  ].filter(([, v]) => v != null);

  const code = h("div", { id: "code", class: "hl code" });
  if (c.code_html) code.innerHTML = c.code_html; // pygments output: escaped on the server
  else code.append(h("pre", {}, c.canonical_code || c.source || ""));
  const curve = h("div", { id: "plot-loss", class: "plot wide" });
  const training = h("div", { id: "training" });
  const { genome, ...provenance } = c.provenance || {};

  fill(view,
    crumbs(campaignLink(c.campaign_id, `campaign ${idOf(c.campaign_id)}`), `candidate ${idOf(c.id)}`),
    h("h1", {}, h("span", { class: "candidate-name" }, nameText(c.name)), " ", h("span", { class: "muted" }, `#${idOf(c.id)}`),
      c.origin === "baseline" ? [" ", badge("baseline", "baseline-mark")] : null),
    h("div", { class: "actions" },
      h("a", { class: "button export", href: `api/candidates/${idOf(c.id)}/export`, download: true }, "Export module"), " ",
      c.parent_ids && c.parent_ids.length
        ? h("a", { class: "button", href: `#/compare/${idOf(c.parent_ids[0])},${idOf(c.id)}` }, "Compare with parent")
        : null, " ",
      h("a", { class: "button", href: `#/campaigns/${idOf(c.campaign_id)}/genealogy` }, "Genealogy")),
    h("dl", { class: "facts" }, facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
    c.thought ? h("section", { class: "card" }, h("h2", {}, "Thought"), h("p", { class: "thought" }, c.thought)) : null,
    h("section", { class: "card" }, h("h2", {}, "Code"), code),
    c.diff ? h("section", { class: "card" }, h("h2", {}, "Diff against parent ", candidateLink(c.parent_ids[0])), diffView(c.diff)) : null,
    h("section", { class: "card" }, h("h2", {}, "Loss and gradient vs the margin β·Δ, next to DPO"), curve),
    duplicate ? null : h("section", { class: "card" }, h("h2", {}, "Training curves"), training),
    transcriptSection(ctx, c),
    h("section", { class: "card" }, h("h2", {}, "Lineage"), lineageView(c)),
    h("section", { class: "card" }, h("h2", {}, "Evaluations"), evaluationsTable(c.evaluations || [])),
    h("section", { class: "card" }, h("h2", {}, "Sandbox check and provenance"),
      h("details", { class: "verdict" }, h("summary", {}, duplicate ? "sandbox check (it ran before the duplicate was found)" : "sandbox check"),
        h("pre", {}, JSON.stringify(c.verdict, null, 2))),
      h("details", { class: "provenance" }, h("summary", {}, "provenance"), h("pre", {}, JSON.stringify(provenance, null, 2))),
      genome !== undefined
        ? h("details", { class: "genome" }, h("summary", {}, "genome (the search's encoding of this loss)"), h("pre", {}, JSON.stringify(genome, null, 2)))
        : null));

  const loads = [loadLossCurve(ctx, curve, c)];
  if (!duplicate) loads.push(loadTrainingCurves(ctx, training, c));
  await Promise.all(loads);
}

async function loadLossCurve(ctx, curve, c) {
  try {
    const lc = await api(`api/candidates/${idOf(c.id)}/loss-curve`);
    if (ctx.alive) await drawLossCurves(ctx, curve, [{ name: c.name, lc }]);
  } catch (err) {
    if (!ctx.alive) return;
    curve.classList.remove("plot"); // no room kept for a plot that will not come
    curve.replaceChildren(err instanceof ApiError && err.status === 409
      ? h("p", { class: "muted" }, `No loss curve: ${errorLines(err).join("; ")}`)
      : errorBox(err, "Could not load the loss curve"));
  }
}

// One evaluation's curves at a time, chosen from a list (the first public run by default).
async function loadTrainingCurves(ctx, box, c) {
  let curves;
  try {
    curves = await api(`api/candidates/${idOf(c.id)}/training-curves`);
  } catch (err) {
    if (!ctx.alive) return;
    box.replaceChildren(err instanceof ApiError && err.status === 404 && !String(err.detail).includes("candidate")
      ? h("p", { class: "muted" }, "This server does not record training curves.")
      : errorBox(err, "Could not load the training curves"));
    return;
  }
  if (!ctx.alive) return;
  const runs = (curves.runs || []).filter((r) => r.steps && r.steps.length);
  if (!runs.length) { box.replaceChildren(h("p", { class: "muted" }, "No training curves: no evaluation recorded its steps.")); return; }
  const div = h("div", { id: "plot-training", class: "plot" });
  const draw = (index) => drawTrainingCurves(ctx, div, runs[index], c.name, window.innerWidth < NARROW);
  box.replaceChildren(
    h("label", {}, "evaluation ", select({ id: "training-run" }, runs.map((r, i) => [i, runLabel(r)]), 0, (v) => draw(Number(v)))),
    div);
  await draw(0);
}

export function diffView(diff) {
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
      h("span", { class: "muted" }, `depth ${a.depth} `), candidateLink(a.id), " ", candidateLink(a.id, nameText(a.name)), " ",
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
    h("td", { class: "small metrics", title: JSON.stringify(e.metrics || {}) }, metricsText(e.metrics || {})),
    h("td", { class: "small reason" }, e.reason || "")));
  return h("div", { class: "scroll" }, h("table", { class: "data evaluations compact" },
    h("thead", {}, h("tr", {}, ["stage", "task", "seed", "status", "score", "key metrics", "reason"].map((t) => h("th", { class: t === "key metrics" ? "metrics" : null }, t)))),
    h("tbody", {}, rows)));
}
