"""The leaderboard on a campaign's view: the stage's metric named, sorting by a header, filters
that change the rows, per-task columns on demand, CSV and JSON downloads of exactly the rows
shown, and ticks that open the compare view."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from playwright.sync_api import Page, expect

from tests.web.conftest import Site, Tab

ROWS = "#leaderboard tbody tr"


def _ids(page: Page) -> list[int]:
    return [int(x) for x in page.locator(ROWS).evaluate_all("rows => rows.map(r => r.dataset.id)")]


def test_sorting_and_filtering_change_the_rows(tab: Tab, site: Site) -> None:
    with tab.showing("leaderboard-sort-filter") as page:
        tab.open(f"#/campaigns/{site.campaign_id}")
        expect(page.locator(ROWS).nth(2)).to_be_visible()
        # The header names what each stage's score measures.
        expect(page.locator("p.metrics")).to_contain_text(re.compile(r"bandit: .*frontier/area"))
        by_rank = _ids(page)
        total = len(by_rank)

        # Sorted by id, ascending, then descending on a second click.
        page.locator("th[data-sort=id] button").click()
        expect(page.locator("th[data-sort=id]")).to_have_attribute("aria-sort", "ascending")
        expect(page.locator(ROWS).first).to_have_attribute("data-id", str(min(by_rank)))
        assert _ids(page) == sorted(by_rank)
        page.locator("th[data-sort=id] button").click()
        expect(page.locator("th[data-sort=id]")).to_have_attribute("aria-sort", "descending")
        expect(page.locator(ROWS).first).to_have_attribute("data-id", str(max(by_rank)))
        assert _ids(page) == sorted(by_rank, reverse=True)

        # Filters: origin, status, then the name box.
        page.locator("#filter-origin").select_option("baseline")
        expect(page.locator(ROWS)).to_have_count(3)
        expect(page.locator(f"{ROWS}:not(.baseline)")).to_have_count(0)
        page.locator("#filter-origin").select_option("")
        expect(page.locator(ROWS)).to_have_count(total)
        page.locator("#filter-status").select_option("DUPLICATE")
        expect(page.locator(ROWS)).to_have_count(1)
        expect(page.locator(ROWS).first).to_have_attribute("data-id", str(site.duplicate_id))
        page.locator("#filter-status").select_option("")
        page.locator("#filter-q").fill("hinge")
        expect(page.locator(ROWS)).to_have_count(1)
        expect(page.locator(ROWS).first).to_contain_text("hinge")
        page.locator("#filter-q").fill("no such name")
        expect(page.locator("#leaderboard")).to_have_text("No candidate matches these filters.")
        page.locator("#filter-q").fill("")
        expect(page.locator(ROWS)).to_have_count(total)


def test_per_task_columns_show_on_demand(tab: Tab, site: Site) -> None:
    with tab.showing("leaderboard-tasks") as page:
        tab.open(f"#/campaigns/{site.campaign_id}")
        expect(page.locator(ROWS).nth(2)).to_be_visible()
        expect(page.locator("#leaderboard th.task")).to_have_count(0)
        with page.expect_request(re.compile(r".*/leaderboard\?.*tasks=true")):
            page.locator("#per-task").check()
        expect(page.locator("#leaderboard th.task", has_text="bandit/tabular")).to_have_count(1)
        scored = page.locator(f"{ROWS}.baseline td.task").first
        expect(scored).to_contain_text(re.compile(r"n=\d"))
        tab.snap("leaderboard", top="section.board")


def test_the_downloads_hold_exactly_the_rows_shown(tab: Tab, site: Site) -> None:
    with tab.showing("leaderboard-downloads") as page:
        tab.open(f"#/campaigns/{site.campaign_id}")
        expect(page.locator(ROWS).nth(2)).to_be_visible()
        page.locator("th[data-sort=name] button").click()
        expect(page.locator("th[data-sort=name]")).to_have_attribute("aria-sort", "ascending")
        page.locator("#filter-origin").select_option("evolve")
        expect(page.locator(f"{ROWS}.baseline")).to_have_count(0)
        shown = _ids(page)
        assert len(shown) >= 2
        names = page.locator(f"{ROWS} td.name").all_inner_texts()

        with page.expect_download() as caught:
            page.get_by_role("link", name="CSV").click()
        assert caught.value.suggested_filename == f"campaign-{site.campaign_id}-leaderboard.csv"
        rows = list(
            csv.DictReader(io.StringIO(Path(caught.value.path()).read_text(encoding="utf-8")))
        )
        assert [int(r["id"]) for r in rows] == shown
        assert [r["name"] for r in rows] == [n.strip() for n in names]
        assert {r["origin"] for r in rows} == {"evolve"}

        with page.expect_download() as caught:
            page.get_by_role("link", name="JSON").click()
        assert caught.value.suggested_filename == f"campaign-{site.campaign_id}-leaderboard.json"
        data = json.loads(Path(caught.value.path()).read_text(encoding="utf-8"))
        assert [r["id"] for r in data["rows"]] == shown


def test_ticking_two_rows_opens_the_compare_view(tab: Tab, site: Site) -> None:
    with tab.showing("leaderboard-compare") as page:
        tab.open(f"#/campaigns/{site.campaign_id}")
        expect(page.locator(ROWS).nth(2)).to_be_visible()
        button = page.locator("#compare")
        expect(button).to_be_disabled()
        first, second = _ids(page)[:2]
        page.locator(f"{ROWS}[data-id='{first}'] input.pick").check()
        expect(button).to_be_disabled()  # one is not a comparison
        page.locator(f"{ROWS}[data-id='{second}'] input.pick").check()
        expect(button).to_be_enabled()
        button.click()
        expect(page).to_have_url(re.compile(rf"#/compare/{first},{second}$"))
        expect(page.locator("table.compare-scores tbody tr")).to_have_count(2)
