"""A campaign's view (`#/campaigns/ID`): summary, plots, events, controls that follow the status,
the engine's start-up phases, and names written by an LLM shown as text."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Route, expect

from tests.web.conftest import EVIL, TOKEN, WIDE, Site, Tab, new_tab, served


def test_the_campaign_view_shows_events_leaderboard_and_plots(tab: Tab, site: Site) -> None:
    with tab.showing("campaign") as page:
        tab.open()
        page.get_by_role("link", name="web-test", exact=True).click()
        expect(page).to_have_url(re.compile(rf"#/campaigns/{site.campaign_id}$"))
        expect(page.locator("#leaderboard tbody tr").nth(2)).to_be_visible()
        baselines = page.locator("#leaderboard tbody tr.baseline")
        expect(baselines).to_have_count(3)
        expect(baselines.first).to_contain_text("baseline")
        for plot in ("#plot-best", "#plot-reward-kl"):
            expect(page.locator(f"{plot} .scatterlayer .trace .point").first).to_be_attached()
        # Only DPO, the reference, is labelled on the plot; the other baselines in the legend.
        expect(page.locator("#plot-reward-kl .textpoint")).to_have_count(1)
        expect(page.locator("#plot-reward-kl .textpoint")).to_have_text("dpo")
        expect(page.locator("#plot-reward-kl .legend")).to_contain_text("hinge")
        # Both plots name the stage they show.
        expect(page.locator("#plot-best .gtitle")).to_contain_text("bandit")
        expect(page.locator("#plot-reward-kl .gtitle")).to_contain_text("bandit")
        # The stream replays the stored events up to `finish`, then the page closes it.
        expect(page.locator(".event-log .event.finish")).to_have_count(1)
        expect(page.locator(".live-state")).to_have_text(re.compile("stream closed"))
        expect(page.locator(".counters")).to_contain_text("evaluation")
        # A budget event's nested payload is shown as the budget line, not left empty.
        expect(page.locator(".event-log .event.budget").first).to_contain_text("proposed")
        # Candidates: the total, and how many of them the candidates limit counts.
        facts = page.locator("dl.facts")
        expect(facts).to_contain_text(re.compile(r"proposed \+ 3 baselines"))
        # A finished campaign allows no control.
        for name in ("Pause", "Resume", "Cancel"):
            expect(page.get_by_role("button", name=name)).to_be_disabled()
        tab.snap("plots", top="section.plots")


def _events(*kinds_payloads: tuple[str, dict[str, Any]]) -> str:
    lines = ["retry: 3000\n\n"]
    for i, (kind, payload) in enumerate(kinds_payloads, start=1):
        data = {"id": i, "kind": kind, "payload": payload, "created_at": "2026-12-06T21:00:00Z"}
        lines.append(f"id: {i}\nevent: {kind}\ndata: {json.dumps(data)}\n\n")
    return "".join(lines)


def test_the_header_counts_and_buttons_follow_every_event_kind(tab: Tab, site: Site) -> None:
    """A campaign starting: PENDING with no candidates, then the engine's phases, `started`, a
    verdict and a budget event (none of which is an evaluation). The header, the counts and the
    buttons follow. The server's answers are replaced here; its campaign is finished."""
    page = tab.page
    real: dict[str, Any] = json.loads(
        page.request.get(f"{site.url}/api/campaigns/{site.campaign_id}").text()
    )
    state = {"streams": 0}

    def campaign(route: Route) -> None:
        running = state["streams"] >= 2  # after the stream that carries the events
        answer = {
            **real,
            "status": "RUNNING" if running else "PENDING",
            "counts": real["counts"] if running else {},
            "finished_at": None,
            "proposed": real.get("proposed", 6) if running else 0,
            "baselines": 3 if running else 0,
            "live": {
                "phase": "proposing" if running else "backend",
                "queue_depth": 0,
                "in_flight": 0,
                "updated_at": None,
            },
        }
        answer.pop("actions", None)  # the page derives them from the status
        route.fulfill(json=answer)

    def events(route: Route) -> None:
        state["streams"] += 1
        if state["streams"] == 1:  # the engine has written nothing yet
            route.fulfill(
                status=200, headers={"Content-Type": "text/event-stream"}, body=": hello\n\n"
            )
            return
        body = _events(
            ("phase", {"phase": "baselines", "detail": "validating the baselines (dpo, hinge)"}),
            ("started", {"resumed": False}),
            ("verdict", {"candidate_id": 7, "status": "ACCEPTED"}),
            (
                "budget",
                {"used": {"candidates": 4, "wall_time_s": 12.0}, "limits": {"candidates": 6}},
            ),
        )
        route.fulfill(status=200, headers={"Content-Type": "text/event-stream"}, body=body)

    with tab.showing("live") as shown:
        shown.route(re.compile(rf".*/api/campaigns/{site.campaign_id}$"), campaign)
        shown.route(re.compile(rf".*/api/campaigns/{site.campaign_id}/events.*"), events)
        tab.open(f"#/campaigns/{site.campaign_id}")
        title = shown.locator("h1")
        expect(title).to_contain_text("PENDING")
        expect(shown.locator("dl.facts")).to_contain_text("0: 0 proposed + 0 baselines")
        expect(shown.locator("p.phase")).to_have_text(
            "engine: starting the evaluation backend (Ray) and the sandbox…"
        )
        expect(shown.get_by_role("button", name="Pause")).to_be_disabled()
        expect(shown.get_by_role("button", name="Resume")).to_be_disabled()
        expect(shown.get_by_role("button", name="Cancel")).to_be_enabled()
        # Then the events arrive: the header follows them, and so do the buttons.
        expect(title).to_contain_text("RUNNING")
        expect(shown.locator(".counters")).to_contain_text("verdict")
        expect(shown.locator(".event-log .event.phase")).to_contain_text("baselines (dpo, hinge)…")
        expect(shown.locator("p.phase")).to_have_text(
            "engine: validating the baselines (dpo, hinge)…"
        )
        expect(shown.locator(".event-log .event.budget")).to_contain_text("4 / 6 proposed")
        expect(shown.locator("dl.facts")).to_contain_text(re.compile(r"proposed \+ 3 baselines"))
        pause = shown.get_by_role("button", name="Pause")
        expect(pause).to_be_enabled()
        expect(shown.get_by_role("button", name="Resume")).to_be_disabled()
        # The real campaign has finished meanwhile: the server's refusal is shown, with or
        # without the token.
        pause.click()
        expect(shown.locator(".control-message")).to_contain_text("needs an API token")
        tab.set_token(TOKEN)
        pause.click()
        expect(shown.locator(".control-message .errors")).to_contain_text("Pause refused")


def test_the_leaderboard_can_hide_candidates_without_a_score(tab: Tab, site: Site) -> None:
    with tab.showing("scored-only") as page:
        tab.open(f"#/campaigns/{site.evil_campaign_id}")  # one rejected candidate, no scores
        rows = page.locator("#leaderboard tbody tr")
        expect(rows).to_have_count(1)
        page.locator("#scored-only").check()
        expect(page.locator("#leaderboard")).to_have_text("No candidate has a score yet.")
        page.locator("#scored-only").uncheck()
        expect(rows).to_have_count(1)
        tab.open(f"#/campaigns/{site.campaign_id}")
        expect(page.locator("#leaderboard tbody tr.baseline")).to_have_count(3)
        page.locator("#scored-only").check()
        expect(page.locator("#leaderboard tbody tr.baseline")).to_have_count(3)


def test_names_written_by_the_llm_are_shown_as_text(tab: Tab, site: Site) -> None:
    with tab.showing("escaped-list") as page:
        tab.open()
        expect(page.locator("#campaigns")).to_contain_text(EVIL)
    with tab.showing("escaped-campaign") as page:
        tab.open(f"#/campaigns/{site.evil_campaign_id}")
        expect(page.locator("h1")).to_contain_text(EVIL)
        expect(page.locator("#leaderboard tbody tr")).to_contain_text(EVIL)
        expect(page.locator("#plot-best")).to_contain_text("no scores yet")
    with tab.showing("escaped-candidate") as page:
        tab.open(f"#/candidates/{site.evil_candidate_id}")
        expect(page.locator("h1 .candidate-name")).to_have_text(EVIL)
        expect(page.locator(".thought")).to_have_text(EVIL)
        expect(page.locator("dl.facts")).to_contain_text(EVIL)
        expect(page.locator("#code")).to_contain_text(EVIL)  # escaped by pygments on the server
        expect(page.locator("#plot-loss")).to_contain_text("No loss curve")
        expect(page.locator("#main script, #main img")).to_have_count(0)
        assert page.evaluate("window.__xss") is None
        page.get_by_role("link", name=f"campaign {site.evil_campaign_id}").click()
        expect(page.locator("h1")).to_contain_text(EVIL)
        expect(page.locator("#main script, #main img")).to_have_count(0)
        assert page.evaluate("window.__xss") is None


def test_with_read_auth_the_page_sends_the_token_on_reads_and_the_event_stream(
    browser: Browser, site: Site, tmp_path: Path, screenshots: Path
) -> None:
    env = {**site.env, "LOSSFORGE_API_TOKEN": TOKEN, "LOSSFORGE_API_READ_AUTH": "true"}
    with served(env, site.root, "serve-read-auth.log") as url:
        auth_site = replace(site, url=url)
        with (
            new_tab(browser, auth_site, tmp_path, screenshots, WIDE) as tab,
            tab.showing("read-auth") as shown,
        ):
            tab.open(f"#/campaigns/{site.campaign_id}")
            expect(shown.locator("body")).to_contain_text("needs an API token")
            tab.set_token(TOKEN)
            shown.reload()
            expect(shown.locator("#leaderboard tbody tr").nth(2)).to_be_visible()
            # The stream needs the token too (EventSource cannot send it; the reader does).
            expect(shown.locator(".event-log .event.finish")).to_have_count(1)
            expect(shown.locator(".live-state")).to_have_text(re.compile("stream closed"))
