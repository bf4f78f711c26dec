// #/ : the campaigns, and the form that starts one. Does not show a campaign (campaign.js).

import { FINAL, api, badge, budgetText, campaignLink, countsText, errorBox, fill, fmtTime, h, idOf } from "./core.js";

export async function campaignsView(view, ctx) {
  document.title = "Campaigns · lossforge";
  const list = h("div", { id: "campaigns", class: "scroll" });
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
      h("td", { class: "name" }, campaignLink(c.id, c.name)),
      h("td", {}, badge(c.status, "status"), c.running ? h("span", { class: "muted" }, " live") : null),
      h("td", {}, h("span", { class: "num" }, total), breakdown ? h("span", { class: "muted small" }, ` (${breakdown})`) : null),
      h("td", {}, budgetText(c.budget, c.proposed)),
      h("td", { title: c.created_at || "" }, fmtTime(c.created_at)));
  });
  return h("table", { class: "data" },
    h("thead", {}, h("tr", {}, ["id", "name", "status", "candidates", "budget used", "created"].map((t) => h("th", {}, t)))),
    h("tbody", {}, rows));
}

// JSON when the text parses as JSON; YAML otherwise. A one-line YAML mapping such as
// `{name: x, stages: [...]}` opens like JSON but is YAML flow style, so the opening brace alone
// decides nothing.
export function specContentType(text) {
  try {
    JSON.parse(text);
    return "application/json";
  } catch {
    return "application/yaml";
  }
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
    try {
      const created = await api("api/campaigns", { method: "POST", body, contentType: specContentType(body) });
      location.hash = `#/campaigns/${idOf(created.id)}`;
    } catch (err) {
      errors.replaceChildren(errorBox(err, "The campaign was not started"));
    } finally {
      button.disabled = false;
    }
  }
  return h("form", { id: "start-form", class: "card", onsubmit: submit },
    h("h2", {}, "Start a campaign"),
    h("p", { class: "muted" }, "A campaign spec in YAML or JSON (sent as JSON when it is valid JSON, as YAML otherwise)."),
    textarea, h("div", { class: "actions" }, button), errors);
}
