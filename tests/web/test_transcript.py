"""The transcript on a candidate's page: the calls behind an LLM-written candidate (prompt,
reply, model, tokens, cost, latency, the repair turn), never a key; a note for other origins."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.web.conftest import LLM_KEY, PROMPT, REPAIR, REPLY, TOKEN, Site, Tab


def test_a_transcript_shows_prompt_reply_model_tokens_and_cost_and_never_a_key(
    tab: Tab, site: Site
) -> None:
    bodies: list[str] = []
    tab.page.on(
        "response",
        lambda r: bodies.append(r.text()) if r.url.endswith("/transcript") else None,
    )
    with tab.showing("transcript") as page:
        tab.open(f"#/candidates/{site.llm_candidate_id}")
        box = page.locator("#transcript")
        calls = box.locator("article.call")
        expect(calls).to_have_count(2)
        expect(box).to_contain_text("2 calls (1 repair turn)")
        first, second = calls.nth(0), calls.nth(1)
        expect(first.locator("dd.model")).to_have_text("test-model-7b")
        expect(first.locator("dd.tokens")).to_have_text("1234 prompt + 56 completion")
        expect(first.locator("dd.cost")).to_have_text("$0.0042")
        expect(first.locator("dd.latency")).to_have_text("1.25 s")
        expect(first.locator("h3")).to_contain_text("wrote this candidate")
        expect(second.locator("h3")).to_contain_text("repair turn")
        expect(second.locator(".reply pre")).to_have_text(REPLY)
        # The prompt is folded; opened, it shows each message with its role.
        prompt = second.locator("details.prompt")
        expect(prompt.locator(".message").first).not_to_be_visible()
        prompt.locator("summary").click()
        expect(prompt.locator(".message")).to_have_count(4)
        expect(prompt.locator(".message.assistant pre")).to_have_text("def loss(:")
        expect(prompt.locator(".message.user pre").last).to_have_text(REPAIR)
        first.locator("details.prompt summary").click()
        expect(first.locator(".message.user pre")).to_have_text(PROMPT)
        expect(first.locator(".message.system pre")).to_have_text("You write losses.")
        # Neither the server's API token nor its LLM key is ever in the page or the answer.
        html = page.content()
        assert TOKEN not in html and LLM_KEY not in html
        assert bodies and all(TOKEN not in b and LLM_KEY not in b for b in bodies)
        tab.snap("transcript", top="section:has(#transcript)")


def test_a_candidate_no_model_wrote_gets_the_note(tab: Tab, site: Site) -> None:
    with tab.showing("transcript-note") as page:
        tab.open(f"#/candidates/{site.duplicated_id}")  # written by the offline search
        note = page.locator("#transcript .note")
        expect(note).to_be_visible()
        expect(note).not_to_be_empty()
        expect(page.locator("#transcript article.call")).to_have_count(0)
