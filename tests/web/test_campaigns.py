"""The campaigns page (`#/`) and its start form: the list, the prefilled example, field errors in
the words the CLI uses, the token, and a spec sent as JSON only when it parses as JSON."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Request, Route, expect

from tests.web.conftest import EXAMPLE_SPEC, TOKEN, Site, Tab


def test_the_campaigns_page_lists_campaigns_and_prefills_the_form(tab: Tab) -> None:
    with tab.showing("campaigns") as page:
        tab.open()
        row = page.locator("#campaigns tbody tr", has_text="web-test")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("FINISHED")
        # The candidates limit counts proposed candidates (baselines apart), and says so.
        expect(row).to_contain_text("6 proposed")
        expect(page.locator("#spec")).to_have_value(EXAMPLE_SPEC)
        tab.snap("campaigns")


def test_a_bad_spec_shows_the_field_error(tab: Tab) -> None:
    with tab.showing("bad-spec") as page:
        tab.open()
        spec = page.locator("#spec")
        expect(spec).to_have_value(EXAMPLE_SPEC)
        tab.set_token(TOKEN)
        spec.fill(EXAMPLE_SPEC.replace("budget: {candidates: 6}", "budget: {candidates: 0}"))
        with page.expect_request(lambda r: r.method == "POST") as sent:
            page.get_by_role("button", name="Start campaign").click()
        assert sent.value.headers["content-type"] == "application/yaml"
        assert sent.value.headers["authorization"] == f"Bearer {TOKEN}"
        error = page.locator("#start-form .errors li")
        expect(error).to_have_count(1)
        expect(error).to_contain_text(re.compile(r"budget\.candidates: .*greater than or equal"))


def test_one_line_yaml_that_opens_with_a_brace_is_sent_as_yaml(tab: Tab) -> None:
    # `{name: x, ...}` is YAML flow style, not JSON: sent as YAML, the server reads it and
    # answers about its fields (here the missing stages), never "not valid JSON".
    with tab.showing("flow-yaml") as page:
        tab.open()
        expect(page.locator("#spec")).to_have_value(EXAMPLE_SPEC)
        tab.set_token(TOKEN)
        page.locator("#spec").fill("{name: one-line, seed: 1, budget: {candidates: 0}}")
        with page.expect_request(lambda r: r.method == "POST") as sent:
            page.get_by_role("button", name="Start campaign").click()
        assert sent.value.headers["content-type"] == "application/yaml"
        errors = page.locator("#start-form .errors")
        expect(errors).to_contain_text("budget.candidates")
        expect(errors).not_to_contain_text("JSON")


def test_a_stage_config_typo_shows_the_field_as_the_cli_names_it(tab: Tab) -> None:
    with tab.showing("config-typo") as page:
        tab.open()
        expect(page.locator("#spec")).to_have_value(EXAMPLE_SPEC)
        tab.set_token(TOKEN)
        page.locator("#spec").fill(EXAMPLE_SPEC.replace("max_steps: 30", "max_step: 30"))
        page.get_by_role("button", name="Start campaign").click()
        error = page.locator("#start-form .errors li")
        expect(error).to_have_count(1)
        expect(error).to_contain_text("stages.0.config.max_step: unknown field; BanditConfig has")


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        ("[" * 100_000, "the spec nests more than 64 levels deep (line 1)"),
        ("- just\n- a list\n", "the spec holds a list, not a mapping of fields"),
        ("# " + "x" * 1_000_001, "the spec is larger than 1,000,000 bytes"),  # a 413
    ],
    ids=["too-deep", "a-list", "too-large"],
)
def test_a_spec_that_is_no_spec_shows_the_one_sentence(tab: Tab, spec: str, said: str) -> None:
    with tab.showing("no-spec") as page:
        tab.open()
        expect(page.locator("#spec")).to_have_value(EXAMPLE_SPEC)
        tab.set_token(TOKEN)
        page.locator("#spec").fill(spec)
        page.get_by_role("button", name="Start campaign").click()
        error = page.locator("#start-form .errors li")
        expect(error).to_have_count(1)
        expect(error).to_contain_text(said)


def test_without_the_token_the_form_says_one_is_needed(tab: Tab) -> None:
    with tab.showing("needs-token") as page:
        tab.open()
        expect(page.locator("#spec")).to_have_value(EXAMPLE_SPEC)
        page.get_by_role("button", name="Start campaign").click()
        expect(page.locator("#start-form .errors")).to_contain_text(
            "this server needs an API token"
        )


def test_a_started_campaign_opens_its_view(tab: Tab, site: Site) -> None:
    # The 202 is answered here: a real start would launch a campaign (and Ray) in the server.
    def accept(route: Route, request: Request) -> None:
        if request.method != "POST":
            route.fallback()
            return
        started = {"id": site.campaign_id, "status": "PENDING", "links": {}}
        route.fulfill(status=202, json=started)

    with tab.showing("started") as page:
        page.route("**/api/campaigns", accept)
        tab.open()
        expect(page.locator("#spec")).to_have_value(EXAMPLE_SPEC)
        page.locator("#spec").fill('{"name": "as-json"}')
        with page.expect_request(lambda r: r.method == "POST") as sent:
            page.get_by_role("button", name="Start campaign").click()
        assert sent.value.headers["content-type"] == "application/json"
        assert "authorization" not in sent.value.headers
        expect(page).to_have_url(re.compile(rf"#/campaigns/{site.campaign_id}$"))
        expect(page.locator("h1")).to_contain_text("web-test")
