"""The campaign's plots on series a short offline campaign cannot produce: a far outlier (drawn at
the axis' edge, the axis kept to the rest), DPO's reward-KL frontier at a tinylm-like stage with
two tasks (drawn as a line, per task), and no-op losses at KL 0 (counted in words). The server's
real series is taken and extended here; the page draws whatever the API sends."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import Route, expect

from tests.web.conftest import Site, Tab

# The y values of the frontier trace drawn on the reward-KL plot.
FRONTIER_Y = (
    "() => document.getElementById('plot-reward-kl').data"
    ".find(t => t.name.startsWith('DPO frontier')).y"
)


def _extended(real: dict[str, Any]) -> dict[str, Any]:
    # The first best was far below DPO, the later ones close to it: the first must not set the
    # axis. Candidate ids are real ones (a click on a point opens a page).
    first = real["reward_kl"][0]["candidate_id"]
    best = [
        {
            "time": real["best_over_time"][0]["time"],
            "seconds": s,
            "candidate_id": first,
            "name": n,
            "score": v,
        }
        for s, n, v in (
            (1.0, "far-away", -50.0),
            (2.0, "a", -0.03),
            (3.0, "b", -0.01),
            (4.0, "c", 0.02),
        )
    ]
    points = []
    for task, shift in (("alpha", 0.0), ("beta", 1.0)):
        points += [{**p, "task": task, "reward": p["reward"] + shift} for p in real["reward_kl"]]
        points += [
            {
                "candidate_id": 1,
                "name": f"noop-{i}",
                "origin": "evolve",
                "baseline": False,
                "reward": 0.0,
                "kl": 0.0,
                "task": task,
            }
            for i in range(2)
        ]
    frontier = [
        {
            "task": task,
            "points": [
                {"beta": b, "kl": kl, "reward": kl * 0.5 + shift}
                for b, kl in ((1.0, 0.1), (0.3, 0.4), (0.1, 0.9))
            ],
        }
        for task, shift in (("alpha", 0.0), ("beta", 1.0))
    ]
    return {
        **real,
        "stage": "tinylm",
        "stages": ["bandit", "tinylm"],
        "best_over_time": best,
        "reward_kl": points,
        "frontier": frontier,
    }


def test_the_plots_keep_a_robust_axis_draw_dpo_s_frontier_and_count_no_op_losses(
    tab: Tab, site: Site
) -> None:
    page = tab.page
    asked: list[str] = []

    def series(route: Route) -> None:
        asked.append(route.request.url)
        real = json.loads(route.fetch().text())
        route.fulfill(json=_extended(real))

    with tab.showing("plots-extended") as shown:
        shown.route(re.compile(r".*/api/campaigns/\d+/series.*"), series)
        tab.open(f"#/campaigns/{site.campaign_id}")
        best = shown.locator("#plot-best")
        # The far point sits at the edge as a marker of its own; the axis keeps to the others.
        expect(best.locator(".scatterlayer .trace")).to_have_count(2)
        expect(best).to_contain_text("1 off the axis")
        low = page.evaluate("() => document.getElementById('plot-best')._fullLayout.yaxis.range[0]")
        assert -1 < low < -0.03, low  # the others inside, the far one not
        expect(best.locator(".gtitle")).to_contain_text("tinylm")

        kl = shown.locator("#plot-reward-kl")
        expect(kl.locator(".gtitle")).to_contain_text("tinylm · task alpha")
        expect(kl.locator(".legend")).to_contain_text("DPO frontier")
        frontier = page.evaluate(FRONTIER_Y)
        assert frontier == pytest.approx([0.05, 0.2, 0.45])
        expect(shown.locator("p.kl0")).to_have_text(
            re.compile(r"^2 candidates at KL 0 \(policy unchanged")
        )
        # Another task: its own frontier.
        shown.locator("#plot-task").select_option("beta")
        expect(kl.locator(".gtitle")).to_contain_text("task beta")
        frontier = page.evaluate(FRONTIER_Y)
        assert frontier == pytest.approx([1.05, 1.2, 1.45])
        # Another stage is asked for by name.
        with shown.expect_request(re.compile(r".*/series\?stage=bandit$")):
            shown.locator("#plot-stage").select_option("bandit")
        assert "stage=" not in asked[0]  # first, the server's default: the highest stage reached
