"""Every view at a 390 x 844 phone viewport: the page never scrolls sideways (its scroll width is
the viewport's), wide tables scroll inside their own box, plots fit the width."""

from __future__ import annotations

import json
import urllib.request

from playwright.sync_api import Page, expect

from tests.web.conftest import PHONE, Site, Tab


def _fits(page: Page, view: str) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width == PHONE["width"], (
        f"{view}: the page is {width} px wide at a {PHONE['width']} px viewport"
    )


def test_every_view_fits_a_phone(phone: Tab, site: Site) -> None:
    with urllib.request.urlopen(
        f"{site.url}/api/campaigns/{site.campaign_id}/leaderboard?origin=evolve&status=EVALUATED"
    ) as response:
        a, b = (r["id"] for r in json.load(response)["rows"][:2])
    views = {
        "campaigns": ("#/", "#campaigns tbody tr"),
        "campaign": (
            f"#/campaigns/{site.campaign_id}",
            "#plot-reward-kl .scatterlayer .trace .point",
        ),
        "candidate": (f"#/candidates/{a}", "#plot-training .scatterlayer .trace"),
        "duplicate": (f"#/candidates/{site.duplicate_id}", "details.genome"),
        "transcript": (f"#/candidates/{site.llm_candidate_id}", "#transcript article.call"),
        "compare": (f"#/compare/{a},{b}", "#plot-compare .scatterlayer .trace"),
        "genealogy": (
            f"#/campaigns/{site.campaign_id}/genealogy",
            "#plot-genealogy .scatterlayer .trace .point",
        ),
    }
    for view, (route, ready) in views.items():
        with phone.showing(f"phone-{view}") as page:
            phone.open(route)
            expect(page.locator(ready).first).to_be_attached()
            _fits(page, view)
            if view == "campaign":
                # The leaderboard is wider than the phone: it scrolls in its own box.
                board = page.locator("#leaderboard .scroll")
                expect(board.locator("tbody tr").first).to_be_visible()
                assert board.evaluate("el => el.scrollWidth > el.clientWidth")
                # Plots are as wide as their box, never wider than the screen.
                plot_width = page.locator("#plot-best .main-svg").first.evaluate(
                    "el => el.getBoundingClientRect().width"
                )
                assert plot_width <= PHONE["width"]
                phone.snap("phone", top="section.plots")
