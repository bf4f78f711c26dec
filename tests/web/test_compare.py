"""The compare view (`#/compare/A,B`): both candidates' scores, per-task metrics with intervals
side by side, loss and gradient curves overlaid on the same axes, and the code diff."""

from __future__ import annotations

import json
import re
import urllib.request

from playwright.sync_api import expect

from tests.web.conftest import Site, Tab


def _two_evaluated(site: Site) -> tuple[int, int]:
    url = f"{site.url}/api/campaigns/{site.campaign_id}/leaderboard?origin=evolve&status=EVALUATED"
    with urllib.request.urlopen(url) as response:
        rows = json.load(response)["rows"]
    assert len(rows) >= 2, rows
    return rows[0]["id"], rows[1]["id"]


def test_the_compare_view_shows_both_codes_diff_overlaid_curves_and_task_metrics(
    tab: Tab, site: Site
) -> None:
    a, b = _two_evaluated(site)
    with tab.showing("compare") as page:
        tab.open(f"#/compare/{a},{b}")
        scores = page.locator("table.compare-scores tbody tr")
        expect(scores).to_have_count(2)
        expect(scores.nth(0)).to_have_attribute("data-id", str(a))
        expect(scores.nth(1)).to_have_attribute("data-id", str(b))
        # Per task: one column per candidate, each a score with its interval and n.
        task = page.locator("table.compare-tasks tbody tr[data-task='bandit/tabular']")
        expect(task).to_have_count(1)
        expect(task.locator("td.num")).to_have_count(2)
        for i in range(2):
            expect(task.locator("td.num").nth(i)).to_contain_text(re.compile(r"\[.*\] n=2"))
        expect(page.locator("table.compare-tasks tbody tr.held-out")).to_have_count(
            page.locator("table.compare-tasks tbody tr .held-out-mark").count()
        )
        # Curves: loss and gradient of each candidate, and DPO's, on the same two axes.
        traces = page.locator("#plot-compare .scatterlayer .trace")
        expect(traces).to_have_count(6)
        legend = page.locator("#plot-compare .legend")
        expect(legend).to_contain_text(f"#{a}")
        expect(legend).to_contain_text(f"#{b}")
        expect(legend).to_contain_text("DPO")
        # The code: the second against the first, lines removed and added.
        diff = page.locator(f".compare-diff[data-other='{b}'] pre.diff")
        expect(diff.locator(".line.meta").first).to_be_visible()
        expect(diff.locator(".line.del").first).to_be_attached()
        expect(diff.locator(".line.add").first).to_be_attached()
        tab.snap("compare", top="body")


def test_a_candidate_page_links_to_a_compare_with_its_parent(tab: Tab, site: Site) -> None:
    with tab.showing("compare-parent") as page:
        tab.open(f"#/candidates/{site.llm_candidate_id}")
        page.get_by_role("link", name="Compare with parent").click()
        expect(page).to_have_url(
            re.compile(rf"#/compare/{site.duplicated_id},{site.llm_candidate_id}$")
        )
        expect(page.locator("table.compare-scores tbody tr")).to_have_count(2)
        expect(
            page.locator(f".compare-diff[data-other='{site.llm_candidate_id}'] pre.diff")
        ).to_contain_text("the reply")
        # Only the parent has a loss curve (the other was rejected): it is drawn, the other named.
        expect(page.locator("#plot-compare .scatterlayer .trace")).to_have_count(4)
        expect(page.locator(".view")).to_contain_text("No curve for robust-noise-llm")


def test_comparing_one_candidate_is_refused_with_the_reason(tab: Tab, site: Site) -> None:
    with tab.showing("compare-missing") as page:
        tab.open(f"#/compare/{site.duplicated_id},999999")
        expect(page.locator(".errors")).to_contain_text("999999")
