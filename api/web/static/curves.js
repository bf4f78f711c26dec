// Per-candidate curves: the loss and its gradient against the margin β·Δ (one candidate, or
// several overlaid for the compare view), and an evaluation's training curves over steps (loss,
// reward margin, KL; DPO's run on the same task and seed dashed beside it).

import { fmtNumber, plot, plotText } from "./core.js";

const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2"];
const DPO_LINE = { color: "#6b7280", dash: "dash" };

// curves: [{name, lc}] with lc a /loss-curve answer; DPO drawn once, from the first.
export function drawLossCurves(ctx, div, curves) {
  const traces = [];
  const line = (lc, y, label, axis, style, legend) => ({
    type: "scatter", mode: "lines", x: lc.margin, y, name: label, xaxis: `x${axis}`, yaxis: `y${axis}`,
    legendgroup: label, showlegend: legend, line: style,
  });
  curves.forEach(({ name, lc }, i) => {
    const style = { color: COLOURS[i % COLOURS.length], width: 2.5 };
    const label = plotText(name);
    traces.push(line(lc, lc.loss, label, "", style, true), line(lc, lc.grad, label, "2", style, false));
  });
  const first = curves[0].lc;
  traces.push(line(first, first.dpo.loss, "DPO", "", DPO_LINE, true), line(first, first.dpo.grad, "DPO", "2", DPO_LINE, false));
  const betas = [...new Set(curves.map(({ lc }) => fmtNumber(lc.beta)))];
  return plot(ctx, div, traces, {
    grid: { rows: 1, columns: 2, pattern: "independent" },
    title: { text: `β = ${betas.join(", ")}` },
    xaxis: { title: { text: "margin β·Δ" } }, yaxis: { title: { text: "loss" } },
    xaxis2: { title: { text: "margin β·Δ" } }, yaxis2: { title: { text: "d loss / d margin" } },
    legend: { orientation: "h", y: -0.25 },
  });
}

const SERIES = [["loss", "loss"], ["rewards/margins", "reward margin"], ["kl/ref", "KL to the reference"]];

export function runLabel(run) {
  const attempt = run.attempt ? ` (attempt ${run.attempt + 1})` : "";
  return `${run.stage} · ${run.task}${run.held_out ? " (held-out)" : ""} · seed ${run.seed}${attempt}`;
}

// One evaluation's training curves over steps, three panels side by side (stacked when narrow).
export function drawTrainingCurves(ctx, div, run, name, narrow) {
  const present = SERIES.filter(([key]) => (run.series || {})[key] && run.series[key].length);
  const shown = present.length ? present : SERIES.slice(0, 1);
  const traces = [];
  const layout = {
    grid: narrow ? { rows: shown.length, columns: 1, pattern: "independent" } : { rows: 1, columns: shown.length, pattern: "independent" },
    title: { text: plotText(runLabel(run)) },
    legend: { orientation: "h", y: narrow ? -0.08 : -0.25 },
    height: narrow ? 260 * shown.length : 320,
  };
  shown.forEach(([key, label], i) => {
    const axis = i ? String(i + 1) : "";
    traces.push({
      type: "scatter", mode: "lines", x: run.steps, y: (run.series || {})[key] || [], name: plotText(name),
      xaxis: `x${axis}`, yaxis: `y${axis}`, legendgroup: "c", showlegend: i === 0, line: { color: COLOURS[0], width: 2 },
    });
    if (run.dpo && run.dpo[key]) {
      traces.push({
        type: "scatter", mode: "lines", x: run.dpo_steps || run.steps, y: run.dpo[key], name: "DPO",
        xaxis: `x${axis}`, yaxis: `y${axis}`, legendgroup: "dpo", showlegend: i === 0, line: DPO_LINE,
      });
    }
    layout[`xaxis${axis}`] = { title: { text: "step" } };
    layout[`yaxis${axis}`] = { title: { text: label } };
  });
  return plot(ctx, div, traces, layout);
}
