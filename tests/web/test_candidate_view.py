"""A candidate's view (`#/candidates/ID`): code, loss curve, per-evaluation training curves,
evaluations and export; a duplicate's page says what it duplicates and keeps its genome folded."""

from __future__ import annotations

import re
from pathlib import Path

from playwright.sync_api import expect

from tests.web.conftest import Site, Tab


def test_the_candidate_view_shows_code_curves_evaluations_and_exports(tab: Tab, site: Site) -> None:
    with tab.showing("candidate") as page:
        tab.open(f"#/campaigns/{site.campaign_id}")
        row = page.locator("#leaderboard tbody tr:not(.baseline)").first
        name = row.locator("td.name a").inner_text()
        row.locator("td.name a").click()
        expect(page.locator("h1 .candidate-name")).to_have_text(name)
        code = page.locator("#code")
        expect(code).to_contain_text("def loss")
        expect(code.locator("span").first).to_be_attached()  # highlighted, not plain text
        expect(page.locator("#plot-loss .scatterlayer .trace")).to_have_count(4)
        evaluations = page.locator("table.evaluations tbody tr")
        expect(evaluations.first).to_contain_text("DONE")
        expect(evaluations).to_have_count(2)  # tabular x 2 seeds
        # An evaluated candidate's score shows with its stage and rank.
        expect(page.locator("dl.facts")).to_contain_text(re.compile(r"at bandit \(rank \d+\)"))

        # Training curves of one evaluation: its loss, margin and KL over steps, DPO beside.
        runs = page.locator("#training-run option")
        expect(runs).to_have_count(2)
        expect(runs.first).to_contain_text("bandit · tabular · seed")
        curves = page.locator("#plot-training .scatterlayer .trace")
        expect(curves.first).to_be_attached()
        expect(page.locator("#plot-training .legend")).to_contain_text("DPO")
        before = page.locator("#plot-training .gtitle").text_content() or ""
        page.locator("#training-run").select_option(index=1)
        expect(page.locator("#plot-training .gtitle")).not_to_have_text(before)
        tab.snap("candidate", top="section:has(#plot-loss)")

        with page.expect_download() as caught:
            page.locator("a.export").click()
        download = caught.value
        assert download.suggested_filename.endswith(".py"), download.suggested_filename
        assert "def loss" in Path(download.path()).read_text(encoding="utf-8")


def test_a_duplicate_says_what_it_duplicates_and_folds_its_genome(tab: Tab, site: Site) -> None:
    with tab.showing("duplicate") as page:
        tab.open(f"#/candidates/{site.duplicate_id}")
        facts = page.locator("dl.facts")
        expect(facts.locator(".summary")).to_contain_text(f"duplicate of #{site.duplicated_id}")
        expect(facts.locator(".summary")).to_contain_text("not trained")
        expect(facts).not_to_contain_text("accepted")
        # No score line for a candidate that has none (never "— at — (rank 71, 0 seeds)").
        expect(facts).to_contain_text("not scored")
        expect(facts).not_to_contain_text("— at —")
        expect(facts).not_to_contain_text("rank")
        # The genome is there, folded: the page stays short.
        genome = page.locator("details.genome")
        expect(genome).to_have_count(1)
        expect(genome).not_to_have_attribute("open", "")
        assert page.evaluate("document.documentElement.scrollHeight") < 4000
        genome.locator("summary").click()
        expect(genome.locator("pre")).to_contain_text("logsigmoid")
        expect(page.locator("#training")).to_have_count(0)  # never trained
        page.get_by_role("link", name=f"#{site.duplicated_id}").first.click()
        expect(page).to_have_url(re.compile(rf"#/candidates/{site.duplicated_id}$"))
