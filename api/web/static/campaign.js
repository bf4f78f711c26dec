// #/campaigns/ID : a campaign's summary, its controls (enabled only where allowed), its plots,
// live events and leaderboard. The board, the plots and the event stream are drawn by their own
// modules; this one lays them out and keeps them fresh.

import {
  FINAL, REFRESH_MS, api, badge, budgetText, candidateLink, countsText, crumbs, errorBox, fill,
  fmtRho, fmtScore, fmtTime, h, idOf, select, setChildren, throttle,
} from "./core.js";
import { leaderboard } from "./leaderboard.js";
import { followEvents, phaseText } from "./live.js";
import { drawBestOverTime, drawRewardKl, rewardKlTasks } from "./plots.js";

// Which controls a campaign allows now: the API's `actions`, or, from a server without them, the
// same rule from its status (pause a running one, resume a paused or interrupted one, cancel any
// that has not ended).
export function allowedActions(c) {
  if (c.actions) return c.actions;
  return {
    pause: c.status === "RUNNING",
    resume: c.status === "PAUSED" || c.status === "INTERRUPTED",
    cancel: !FINAL.has(c.status),
  };
}

// "9: 6 proposed + 3 baselines", from `proposed`/`baselines` or, failing those, from the counts.
function candidatesText(c, baselineRows) {
  const [total, breakdown] = countsText(c.counts);
  const baselines = c.baselines ?? baselineRows;
  const proposed = c.proposed ?? (baselines != null ? Number(total) - baselines : null);
  const split = proposed != null ? `${proposed} proposed + ${baselines} baselines` : null;
  return [h("b", {}, total), split ? `: ${split}` : "", breakdown ? h("span", { class: "muted" }, ` (${breakdown})`) : ""];
}

export async function campaignView(view, ctx, id) {
  const campaign = await api(`api/campaigns/${id}`);
  if (!ctx.alive) return;
  document.title = `${campaign.name} · lossforge`;

  const title = h("h1", {});
  const summary = h("dl", { class: "facts" });
  const message = h("div", { class: "control-message", role: "status" });
  const buttons = {};
  const control = (action, label) => (buttons[action] = h("button", {
    type: "button", class: `control ${action}`,
    onclick: async () => {
      if (action === "cancel" && !confirm("Cancel this campaign? It cannot be resumed.")) return;
      message.replaceChildren();
      try {
        const updated = await api(`api/campaigns/${id}/${action}`, { method: "POST" });
        renderSummary(updated);
        message.replaceChildren(h("p", { class: "ok" }, `${label}: the campaign is ${updated.status}`));
        if (action === "resume") live.connect();
        refresh();
      } catch (err) {
        message.replaceChildren(errorBox(err, `${label} refused`));
      }
    },
  }, label));
  const liveState = h("span", { class: "live-state muted" }, "connecting…");
  const phase = h("p", { class: "phase muted small", role: "status" });
  const counters = h("div", { class: "counters" });
  const log = h("ol", { class: "event-log", reversed: true });
  const refreshError = h("div", {});
  const bestPlot = h("div", { id: "plot-best", class: "plot" });
  const rewardPlot = h("div", { id: "plot-reward-kl", class: "plot" });
  const kl0 = h("p", { class: "kl0 muted small" });
  const plotControls = h("div", { class: "plot-controls" });
  const showRefreshError = (err) => { if (ctx.alive) refreshError.replaceChildren(errorBox(err, "Could not refresh")); };
  const board = leaderboard(ctx, campaign, showRefreshError);

  fill(view,
    crumbs(`campaign ${idOf(id)}`),
    title, summary,
    h("div", { class: "controls" }, control("pause", "Pause"), control("resume", "Resume"), control("cancel", "Cancel"),
      h("a", { class: "button", href: `#/campaigns/${idOf(id)}/genealogy` }, "Genealogy"), message),
    h("div", { class: "grid" },
      h("section", { class: "card plots" }, h("h2", {}, "Progress"), refreshError, plotControls,
        h("div", { class: "plot-row" }, bestPlot, h("div", {}, rewardPlot, kl0))),
      h("section", { class: "card live" }, h("h2", {}, "Events ", liveState), phase, counters, log)),
    board.element);

  let latest = campaign;
  let baselineRows = null;
  function renderSummary(c) {
    latest = c;
    title.replaceChildren(`${c.name} `, badge(c.status, "status"));
    const best = c.best
      ? [candidateLink(c.best.candidate_id, c.best.name), ` ${fmtScore(c.best.score, c.best.spread)} vs DPO at ${c.best.stage}`]
      : "—";
    const facts = [
      ["status", [c.status, c.reason ? ` — ${c.reason}` : ""]],
      ["candidates", candidatesText(c, baselineRows)],
      ["best discovered", best],
      ["confirmed", c.confirmed ? `${c.confirmed} (beat DPO on held-out tasks, fresh seeds)` : "none: no discovery holds up on held-out tasks and fresh seeds yet"],
      ["proxy validity", Object.entries((c.validity || {}).public_vs_held_out || {}).map(([stage, r]) => `${stage}: Spearman(public, held-out) ${fmtRho(r)}`).join("; ") || "—"],
      ["stage agreement", Object.entries((c.validity || {}).between_stages || {}).map(([pair, r]) => `${pair}: ${fmtRho(r)}`).join("; ") || "—"],
      ["budget used", budgetText(c.budget, c.proposed)],
      ["stages", (c.stages || []).join(" → ") || "—"],
      ["seed", String(c.seed)],
      ["created", fmtTime(c.created_at)],
      ["finished", fmtTime(c.finished_at)],
    ];
    summary.replaceChildren(...facts.flatMap(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]));
    const allowed = allowedActions(c);
    for (const [action, button] of Object.entries(buttons)) {
      button.disabled = !allowed[action];
      button.title = allowed[action] ? "" : `not while ${c.status}`;
    }
    // The stream's phase events say more (their detail); the campaign's phase name fills in
    // until one arrives.
    if (FINAL.has(c.status)) phase.textContent = "";
    else if (c.live && c.live.phase && !phase.textContent) phase.textContent = `engine: ${phaseText(c.live.phase)}`;
  }
  renderSummary(campaign);

  // Plots: the best over time at the highest stage reached (or the one chosen), reward vs KL at
  // a stage and task.
  let stage = null;
  let task = null;
  async function loadSeries() {
    let series = await api(`api/campaigns/${id}/series${stage ? `?stage=${encodeURIComponent(stage)}` : ""}`);
    // A server from before `stages` was part of the series picks the first stage: ask for the best's.
    if (!stage && !series.stages && latest.best && latest.best.stage !== series.stage) {
      series = await api(`api/campaigns/${id}/series?stage=${encodeURIComponent(latest.best.stage)}`);
    }
    if (!ctx.alive) return;
    const stages = series.stages && series.stages.length ? series.stages : latest.stages || [series.stage];
    const tasks = rewardKlTasks(series);
    if (task == null || !tasks.includes(task)) task = tasks.length ? tasks[0] : null;
    setChildren(plotControls,
      h("label", {}, "stage ", select({ id: "plot-stage" }, stages, series.stage, (value) => { stage = value; task = null; loadSeries().catch(showRefreshError); })),
      tasks.length ? h("label", {}, " task ", select({ id: "plot-task" }, tasks.map((t) => [t, t === "all" ? "all (mean)" : t]), task, (value) => { task = value; loadSeries().catch(showRefreshError); })) : null);
    drawBestOverTime(ctx, bestPlot, series, latest);
    const atZero = await drawRewardKl(ctx, rewardPlot, series, task);
    if (ctx.alive) kl0.textContent = atZero ? `${atZero} candidate${atZero > 1 ? "s" : ""} at KL 0 (policy unchanged: the loss gives no gradient).` : "";
  }
  // Baselines on the board, for a server whose campaign does not count them apart.
  async function countBaselines() {
    if (latest.baselines != null) return;
    const page = await api(`api/campaigns/${id}/leaderboard?origin=baseline&limit=500`);
    baselineRows = page.rows.filter((r) => r.origin === "baseline").length;
  }
  const refresh = throttle(async () => {
    if (!ctx.alive) return;
    try {
      const [c] = await Promise.all([api(`api/campaigns/${id}`), board.load(), loadSeries(), countBaselines()]);
      if (!ctx.alive) return;
      renderSummary(c);
      refreshError.replaceChildren();
    } catch (err) { showRefreshError(err); }
  }, REFRESH_MS);
  ctx.own(refresh.cancel);
  refresh();

  const live = followEvents(ctx, id, { liveState, counters, log, phase, refresh });
}
