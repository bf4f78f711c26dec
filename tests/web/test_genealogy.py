"""The genealogy view (`#/campaigns/ID/genealogy`): a plotly graph of every candidate, edges
from parent to child, duplicates and rejections toggled, a click on a node opens the candidate."""

from __future__ import annotations

import json
import re
import urllib.request

from playwright.sync_api import expect

from tests.web.conftest import Site, Tab

POINTS = "#plot-genealogy .scatterlayer .trace .point"


def test_the_genealogy_draws_nodes_and_edges_and_a_click_opens_a_candidate(
    tab: Tab, site: Site
) -> None:
    with urllib.request.urlopen(
        f"{site.url}/api/campaigns/{site.campaign_id}/genealogy"
    ) as response:
        nodes = json.load(response)["nodes"]
    edges = sum(1 for n in nodes for p in n["parent_ids"] if any(m["id"] == p for m in nodes))
    duplicates = sum(1 for n in nodes if n["status"] == "DUPLICATE")
    rejected = sum(1 for n in nodes if n["status"] == "REJECTED")
    assert edges >= 2 and duplicates == 1 and rejected >= 1, nodes

    with tab.showing("genealogy") as page:
        tab.open(f"#/campaigns/{site.campaign_id}")
        page.get_by_role("link", name="Genealogy").click()
        expect(page).to_have_url(re.compile(rf"#/campaigns/{site.campaign_id}/genealogy$"))
        expect(page.locator(POINTS)).to_have_count(len(nodes))
        # The edges: one line segment (plotly breaks the line at each gap) per parent -> child.
        expect(page.locator("#plot-genealogy .scatterlayer .trace .js-line")).to_have_count(edges)
        expect(page.locator(".counts")).to_contain_text(
            f"{len(nodes)} of {len(nodes)} candidates, {edges} parent"
        )
        expect(page.locator("#plot-genealogy .legend")).to_contain_text("no island")

        page.locator("#show-duplicates").uncheck()
        expect(page.locator(POINTS)).to_have_count(len(nodes) - duplicates)
        page.locator("#show-rejections").uncheck()
        expect(page.locator(POINTS)).to_have_count(len(nodes) - duplicates - rejected)
        page.locator("#show-duplicates").check()
        page.locator("#show-rejections").check()
        expect(page.locator(POINTS)).to_have_count(len(nodes))

        # By creation order: the same nodes and edges, the oldest left.
        page.locator("#genealogy-x").select_option("created")
        expect(page.locator("#plot-genealogy .gtitle")).to_contain_text("creation order")
        expect(page.locator(POINTS)).to_have_count(len(nodes))
        expect(page.locator("#plot-genealogy .scatterlayer .trace .js-line")).to_have_count(edges)
        tab.snap("genealogy")

        # A click on a node (plotly picks the point under the mouse) opens its candidate.
        box = page.locator(POINTS).last.bounding_box()
        assert box is not None
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        expect(page.locator(".hoverlayer .hovertext")).to_be_visible()
        page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
        expect(page).to_have_url(re.compile(r"#/candidates/\d+$"))
        expect(page.locator("h1 .candidate-name")).not_to_be_empty()
