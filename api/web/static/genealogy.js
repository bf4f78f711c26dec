// #/campaigns/ID/genealogy : the campaign's candidates as a graph. x is the generation (baselines
// and candidates written from scratch are 0, a child is one past its oldest parent's) or the
// creation order; lanes are islands; edges run parent -> child; colour says the island, size and
// shade the score. Duplicates and rejections can be hidden; a click opens the candidate. Plotly
// only, no graph library.

import { api, campaignLink, crumbs, fill, h, idOf, linkPoints, plot, plotText, select } from "./core.js";

const COLOURS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#ca8a04", "#db2777"];
const BASELINE = "#6b7280";

// Generation of each node: 0 without parents (in this campaign), else 1 + its parents' highest.
export function generations(nodes) {
  const byId = new Map(nodes.map((n) => [n.id, n]));
  const memo = new Map();
  const gen = (n, trail = new Set()) => {
    if (memo.has(n.id)) return memo.get(n.id);
    if (trail.has(n.id)) return 0; // a cycle cannot happen; if the data says so, stop here
    trail.add(n.id);
    const parents = (n.parent_ids || []).map((p) => byId.get(p)).filter(Boolean);
    const g = parents.length ? 1 + Math.max(...parents.map((p) => gen(p, trail))) : 0;
    memo.set(n.id, g);
    return g;
  };
  for (const n of nodes) gen(n);
  return memo;
}

export async function genealogyView(view, ctx, id) {
  const data = await api(`api/campaigns/${id}/genealogy`);
  if (!ctx.alive) return;
  document.title = `Genealogy of campaign ${idOf(id)} · lossforge`;
  const show = { duplicates: true, rejections: true, x: "generation" };
  const graph = h("div", { id: "plot-genealogy", class: "plot tall" });
  const counts = h("p", { class: "muted small counts" });
  const toggle = (key, label) => h("label", {}, h("input", { type: "checkbox", id: `show-${key}`, checked: true, onchange: (e) => { show[key] = e.target.checked; draw(); } }), ` ${label}`);
  fill(view,
    crumbs(campaignLink(id, `campaign ${idOf(id)}`), "genealogy"),
    h("h1", {}, "Genealogy"),
    h("div", { class: "filters" }, toggle("duplicates", "duplicates"), toggle("rejections", "rejections"),
      h("label", {}, "x ", select({ id: "genealogy-x" }, [["generation", "generation"], ["created", "creation order"]], show.x, (value) => { show.x = value; draw(); }))),
    counts,
    h("section", { class: "card" }, graph));

  const nodes = data.nodes || [];
  const generation = generations(nodes);
  // Creation order: oldest first (ids grow with time), 0, 1, 2, ...
  const order = new Map(nodes.slice().sort((a, b) => a.id - b.id).map((n, i) => [n.id, i]));
  const xOf = (n) => (show.x === "created" ? order.get(n.id) : generation.get(n.id));
  const islands = [...new Set([...(data.islands || []), ...nodes.map((n) => n.island).filter((i) => i != null)])].sort((a, b) => a - b);
  const lanes = [null, ...islands]; // lane 0: no island (baselines, user candidates)
  const laneOf = (n) => lanes.indexOf(n.island ?? null);

  function draw() {
    const visible = nodes.filter((n) => (show.duplicates || n.status !== "DUPLICATE") && (show.rejections || n.status !== "REJECTED"));
    const shown = new Map(visible.map((n) => [n.id, n]));
    // Spread the nodes that share a lane and a generation across the lane's height.
    const cells = new Map();
    for (const n of visible) {
      const key = `${laneOf(n)}:${xOf(n)}`;
      if (!cells.has(key)) cells.set(key, []);
      cells.get(key).push(n);
    }
    const pos = new Map();
    for (const members of cells.values()) {
      members.sort((a, b) => a.id - b.id).forEach((n, i) => {
        const offset = members.length > 1 ? (i / (members.length - 1) - 0.5) * 0.7 : 0;
        pos.set(n.id, [xOf(n), laneOf(n) + offset]);
      });
    }
    const edgeX = [];
    const edgeY = [];
    for (const n of visible) {
      for (const p of n.parent_ids || []) {
        if (!shown.has(p)) continue;
        const [x0, y0] = pos.get(p);
        const [x1, y1] = pos.get(n.id);
        edgeX.push(x0, x1, null);
        edgeY.push(y0, y1, null);
      }
    }
    const scores = visible.map((n) => n.score).filter((s) => s != null);
    const [lo, hi] = scores.length ? [Math.min(...scores), Math.max(...scores)] : [0, 1];
    const scaled = (s) => (s == null ? null : hi > lo ? (s - lo) / (hi - lo) : 1);
    const traces = [{
      type: "scatter", mode: "lines", name: "parent → child", hoverinfo: "skip", showlegend: false,
      x: edgeX, y: edgeY, line: { color: "#cbd5e1", width: 1.2 },
    }];
    lanes.forEach((island, lane) => {
      const members = visible.filter((n) => laneOf(n) === lane);
      if (!members.length) return;
      const colour = island == null ? BASELINE : COLOURS[lane % COLOURS.length];
      traces.push({
        type: "scatter", mode: "markers", name: island == null ? "no island" : `island ${island}`,
        x: members.map((n) => pos.get(n.id)[0]), y: members.map((n) => pos.get(n.id)[1]),
        customdata: members.map((n) => n.id),
        text: members.map((n) => `#${idOf(n.id)} ${plotText(n.name)}<br>${plotText(n.status)}${n.score != null ? `, ${n.score >= 0 ? "+" : ""}${n.score.toFixed(4)} vs DPO at ${plotText(n.stage)}` : ", no score"}${n.duplicate_of != null ? `<br>duplicate of #${idOf(n.duplicate_of)}` : ""}`),
        hovertemplate: "%{text}<extra></extra>",
        marker: {
          color: colour,
          size: members.map((n) => (scaled(n.score) == null ? 10 : 9 + 13 * scaled(n.score))),
          opacity: members.map((n) => (scaled(n.score) == null ? 0.7 : 0.45 + 0.55 * scaled(n.score))),
          symbol: members.map((n) => (n.origin === "baseline" ? "diamond" : n.status === "DUPLICATE" ? "circle-open" : n.status === "REJECTED" ? "x" : "circle")),
          line: { color: "#1f2937", width: 0.5 },
        },
      });
    });
    const edges = edgeX.length / 3;
    counts.textContent = `${visible.length} of ${nodes.length} candidates, ${edges} parent → child edge${edges === 1 ? "" : "s"}. Size and shade: score vs DPO; ◇ baseline, ○ duplicate, × rejected.`;
    plot(ctx, graph, traces, {
      title: { text: `Candidates by ${show.x === "created" ? "creation order" : "generation"} and island` },
      xaxis: { title: { text: show.x === "created" ? "creation order" : "generation" }, dtick: show.x === "created" ? undefined : 1, zeroline: false },
      yaxis: { tickvals: lanes.map((_, i) => i), ticktext: lanes.map((i) => (i == null ? "no island" : `island ${i}`)), zeroline: false, range: [-0.6, lanes.length - 0.4] },
      legend: { orientation: "h", y: -0.18 },
      height: Math.max(360, 110 * lanes.length + 120),
      hovermode: "closest",
    }).then(() => linkPoints(graph));
  }
  draw();
}
