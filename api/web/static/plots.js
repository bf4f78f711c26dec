// The campaign's two plots: the best score over time at one stage, and reward vs KL at one stage
// and task with DPO's frontier. The score axis is robust: one far point does not flatten the rest
// (it is drawn at the edge, its value on hover). Per-candidate curves are in curves.js.

import { FINAL, linkPoints, plot, plotText } from "./core.js";

const EDGE = "#9ca3af";

// The range a person wants to see: the values within 8 robust standard deviations (1.4826 x the
// median absolute deviation) of their median, so one far point does not flatten the rest; all of
// them when they agree too closely to tell (MAD 0) or are too few. `keep` values (0, where DPO
// sits) are always inside.
export function robustRange(values, keep = []) {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (!v.length) return null;
  // The kept values (DPO's 0) count as data too: with one score and one far point, 0 tells
  // which of the two is far.
  const all = [...v, ...keep].sort((a, b) => a - b);
  const median = (xs) => (xs.length % 2 ? xs[(xs.length - 1) / 2] : (xs[xs.length / 2 - 1] + xs[xs.length / 2]) / 2);
  const mid = median(all);
  const scale = 1.4826 * median(all.map((x) => Math.abs(x - mid)).sort((a, b) => a - b));
  let lo = v[0];
  let hi = v[v.length - 1];
  if (all.length >= 3 && scale > 0) {
    lo = Math.max(lo, mid - 8 * scale);
    hi = Math.min(hi, mid + 8 * scale);
  }
  for (const k of keep) { lo = Math.min(lo, k); hi = Math.max(hi, k); }
  const pad = (hi - lo || Math.abs(hi) || 1) * 0.08;
  return [lo - pad, hi + pad];
}

// Points outside `range` moved to its edge (and marked), so they still show where they are.
function clipped(points, key, range) {
  if (!range) return { inside: points, outside: [] };
  const [lo, hi] = range;
  const inside = [];
  const outside = [];
  for (const p of points) {
    if (p[key] < lo) outside.push({ ...p, shown: lo, below: true });
    else if (p[key] > hi) outside.push({ ...p, shown: hi, below: false });
    else inside.push(p);
  }
  return { inside, outside };
}

function outlierTrace(outside, x, key, hovertemplate) {
  return {
    type: "scatter", mode: "markers", name: "off the axis", showlegend: false,
    x: outside.map(x), y: outside.map((p) => p.shown),
    marker: { symbol: outside.map((p) => (p.below ? "triangle-down" : "triangle-up")), size: 10, color: EDGE },
    text: outside.map((p) => plotText(p.name)), customdata: outside.map((p) => p.candidate_id),
    meta: outside.map((p) => p[key]), hovertemplate,
  };
}

export function drawBestOverTime(ctx, div, series, campaign) {
  const points = (series.best_over_time || []).slice();
  // Carry the last best on to the campaign's end (or now, while it runs), without a marker.
  const ended = campaign.finished_at ? Date.parse(campaign.finished_at) : (FINAL.has(campaign.status) ? NaN : Date.now());
  const end = (ended - Date.parse(campaign.created_at)) / 1000;
  const last = points[points.length - 1];
  if (last && end > last.seconds) points.push({ ...last, seconds: end, carried: true });
  const range = robustRange(points.filter((p) => !p.carried).map((p) => p.score), [0]);
  const { outside } = clipped(points.filter((p) => !p.carried), "score", range);
  const hover = "%{text}<br>%{y:+.4f} vs DPO at %{x:.0f} s<extra></extra>";
  const traces = [{
    type: "scatter", mode: "lines+markers", name: "best", line: { shape: "hv", color: "#2563eb" },
    marker: { size: points.map((p) => (p.carried ? 0 : 7)) },
    x: points.map((p) => p.seconds), y: points.map((p) => p.score),
    text: points.map((p) => plotText(p.name)), customdata: points.map((p) => p.candidate_id),
    hovertemplate: hover,
  }];
  if (outside.length) {
    traces.push(outlierTrace(outside, (p) => p.seconds, "score", "%{text}<br>%{meta:+.4f} vs DPO (off the axis)<extra></extra>"));
  }
  const metric = series.metric && series.metric.name ? plotText(series.metric.name) : "score vs DPO";
  return plot(ctx, div, traces, {
    title: { text: `Best over time · ${plotText(series.stage)}` },
    xaxis: { title: { text: "seconds since the campaign started" }, rangemode: "tozero" },
    yaxis: { title: { text: metric }, zeroline: false, range: range || undefined },
    showlegend: false,
    // DPO scores 0 by definition: the line to beat.
    shapes: [{ type: "line", xref: "paper", x0: 0, x1: 1, y0: 0, y1: 0, line: { color: "#6b7280", dash: "dash", width: 1 } }],
    annotations: [
      { text: "DPO", showarrow: false, xref: "paper", x: 1, xanchor: "right", y: 0, yanchor: "bottom", font: { color: "#6b7280" } },
      ...(points.length ? [] : [{ text: "no scores yet", showarrow: false, xref: "paper", yref: "paper", x: 0.5, y: 0.5 }]),
      ...(outside.length ? [{ text: `${outside.length} off the axis (▲▼ at the edge)`, showarrow: false, xref: "paper", yref: "paper", x: 0, xanchor: "left", y: 1, yanchor: "bottom", font: { size: 11, color: "#6b7280" } }] : []),
    ],
  }).then(() => linkPoints(div));
}

// The tasks the reward-KL points name, "all" (the mean over tasks) last.
export function rewardKlTasks(series) {
  const tasks = [...new Set((series.reward_kl || []).map((p) => p.task).filter((t) => t != null))];
  return tasks.sort((a, b) => (a === "all") - (b === "all") || String(a).localeCompare(String(b)));
}

const BASELINE_COLOURS = ["#d97706", "#7c3aed", "#0d9488", "#db2777", "#65a30d"];

// Reward vs KL at one stage and task. Only DPO, the reference, is labelled on the plot; the other
// baselines are named in the legend and every point on hover, so labels never pile up.
// Returns how many points sit at KL 0 (a loss that leaves the policy where it started).
export function drawRewardKl(ctx, div, series, task) {
  const usable = (series.reward_kl || [])
    .filter((p) => p.reward != null && p.kl != null)
    .filter((p) => task == null || p.task == null || p.task === task);
  const isDpo = (p) => p.baseline && String(p.name).toLowerCase() === "dpo";
  const hover = "%{text}<br>KL %{x:.4g}, reward %{y:.4g}<extra></extra>";
  const points = (list, extra) => ({
    type: "scatter", x: list.map((p) => p.kl), y: list.map((p) => p.reward),
    text: list.map((p) => plotText(p.name)), customdata: list.map((p) => p.candidate_id),
    hovertemplate: hover, ...extra,
  });
  const traces = [];
  const frontier = (series.frontier || []).find((f) => f.task === task) || (task == null ? (series.frontier || [])[0] : null);
  if (frontier && frontier.points && frontier.points.length) {
    const f = frontier.points.slice().sort((a, b) => a.kl - b.kl);
    traces.push({
      type: "scatter", mode: "lines+markers", name: "DPO frontier (β sweep)",
      x: f.map((p) => p.kl), y: f.map((p) => p.reward), text: f.map((p) => `β=${p.beta}`),
      line: { color: "#6b7280", dash: "dash" }, marker: { size: 5, color: "#6b7280" },
      hovertemplate: "DPO %{text}<br>KL %{x:.4g}, reward %{y:.4g}<extra></extra>",
    });
  }
  traces.push(points(usable.filter((p) => !p.baseline), {
    mode: "markers", name: "discovered", marker: { symbol: "circle", size: 8, color: "#2563eb", opacity: 0.75 },
  }));
  usable.filter((p) => p.baseline && !isDpo(p)).forEach((p, i) => traces.push(points([p], {
    mode: "markers", name: plotText(p.name),
    marker: { symbol: "diamond", size: 11, color: BASELINE_COLOURS[i % BASELINE_COLOURS.length] },
  })));
  const dpo = usable.filter(isDpo);
  if (dpo.length) {
    traces.push(points(dpo, {
      mode: "markers+text", name: "DPO", textposition: "middle left", textfont: { color: "#7f1d1d" },
      marker: { symbol: "diamond", size: 13, color: "#dc2626", line: { color: "#7f1d1d", width: 1 } },
    }));
  }
  const atZero = usable.filter((p) => !p.baseline && p.kl === 0).length;
  const where = [series.stage, task && task !== "all" ? `task ${task}` : "mean over tasks"].map(plotText).join(" · ");
  return plot(ctx, div, traces, {
    title: { text: `Reward vs KL · ${where}` },
    xaxis: { title: { text: plotText(series.kl_metric || "KL") } },
    yaxis: { title: { text: plotText(series.reward_metric || "reward") } },
    legend: { orientation: "h", x: 0, y: -0.22 },
    margin: { l: 60, r: 16, t: 48, b: 80 },
    height: 380,
  }).then(() => { linkPoints(div); return atZero; });
}
