// lossforge web page: one page, hash routes, everything read from the JSON API of the same server.
// This module only routes; each view lives in its own module.
//
//   #/                         campaigns, and the form that starts one        campaigns.js
//   #/campaigns/ID             a campaign: summary, live events, controls,     campaign.js, live.js,
//                              leaderboard, plots                              leaderboard.js, plots.js
//   #/campaigns/ID/genealogy   its candidates as a graph                       genealogy.js
//   #/candidates/ID            a candidate: code, diff, curves, transcript     candidate.js, transcript.js
//   #/compare/ID,ID[,...]      candidates side by side                        compare.js
//
// Plain browser JavaScript (ES modules), no build step; no URL leaves this origin.

import { TOKEN_KEY, errorBox, h, idOf, newContext, token } from "./core.js";
import { campaignsView } from "./campaigns.js";
import { campaignView } from "./campaign.js";
import { candidateView } from "./candidate.js";
import { compareView } from "./compare.js";
import { genealogyView } from "./genealogy.js";

const ROUTES = [
  [/^\/campaigns\/(\d+)\/?$/, (view, ctx, m) => campaignView(view, ctx, idOf(m[1]))],
  [/^\/campaigns\/(\d+)\/genealogy\/?$/, (view, ctx, m) => genealogyView(view, ctx, idOf(m[1]))],
  [/^\/candidates\/(\d+)\/?$/, (view, ctx, m) => candidateView(view, ctx, idOf(m[1]))],
  [/^\/compare\/(\d+(?:,\d+)+)\/?$/, (view, ctx, m) => compareView(view, ctx, m[1].split(",").map(idOf))],
  [/^\/?$/, (view, ctx) => campaignsView(view, ctx)],
];

let current = null;

async function route() {
  if (current) {
    current.alive = false;
    for (const fn of current.cleanups.splice(0)) { try { fn(); } catch (err) { console.error(err); } }
  }
  const ctx = (current = newContext());
  const path = location.hash.replace(/^#/, "") || "/";
  const view = h("div", { class: "view" });
  document.getElementById("main").replaceChildren(view);
  try {
    for (const [pattern, show] of ROUTES) {
      const m = path.match(pattern);
      if (m) { await show(view, ctx, m); return; }
    }
    view.append(h("h1", {}, "Not found"), h("p", {}, "No page here. ", h("a", { href: "#/" }, "Campaigns")));
  } catch (err) {
    if (ctx.alive) view.append(errorBox(err, "Could not load this page"));
  }
}

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
