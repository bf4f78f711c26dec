"""The web page at `/`, in a real headless Chromium against a real `lossforge serve`.

Once per module a small real campaign runs with the CLI (`lossforge run`, a local Ray), two rows
whose names are HTML are added to the archive, and the server is started as a user starts it, with
an API token. The browser then reads everything from the server's API. Chromium is the system's
(Debian's `chromium`): without it these tests fail, never skip, and they never download a browser.

A check that fails names a screenshot of the page (kept under the test's tmp dir with one of each
page). LOSSFORGE_WEB_SCREENSHOT=path also saves the campaign view there (how docs/web.png is made).
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, Route, expect, sync_playwright

from discovery.archive import CampaignStatus, CandidateStatus, open_archive

LOSSFORGE = str(Path(sys.executable).parent / "lossforge")
STATIC = Path(str(resources.files("api.web") / "static"))
EXAMPLE_SPEC = (STATIC / "example-spec.yaml").read_text(encoding="utf-8")
TOKEN = "web-test-token-5b1d0e"
# What an LLM could name a candidate; shown as text, it never runs.
EVIL = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

expect.set_options(timeout=15_000)


@dataclass(frozen=True)
class Site:
    url: str
    campaign_id: int  # the finished campaign
    evil_campaign_id: int  # a campaign named in HTML, not started
    evil_candidate_id: int  # a rejected candidate of it whose name, thought and reason are HTML
    env: dict[str, str]  # the server's environment (its archive)
    root: Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            tail = log.read_text()[-3000:]
            pytest.fail(f"`lossforge serve` exited ({server.returncode}):\n{tail}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"`lossforge serve` did not answer /healthz in 60 s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    root = tmp_path_factory.mktemp("web")
    database_url = f"sqlite:///{root / 'archive.db'}"
    env = {
        **os.environ,
        "LOSSFORGE_DATABASE_URL": database_url,
        "LOSSFORGE_CACHE_DIR": str(root / "cache"),
        "LOSSFORGE_DATA_DIR": str(root / "data"),
        "LOSSFORGE_LOG_LEVEL": "WARNING",
    }
    env.pop("LOSSFORGE_API_TOKEN", None)
    spec = EXAMPLE_SPEC.replace("name: first-campaign", "name: web-test")
    assert "name: web-test" in spec, "example-spec.yaml no longer names its campaign first-campaign"
    (root / "spec.yaml").write_text(spec, encoding="utf-8")
    ran = subprocess.run(
        [LOSSFORGE, "run", str(root / "spec.yaml"), "--quiet"],
        env=env,
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ran.returncode == 0, f"`lossforge run` failed:\n{ran.stdout[-2000:]}{ran.stderr[-3000:]}"

    archive = open_archive(database_url)
    campaign = next(c for c in archive.list_campaigns() if c.name == "web-test")
    assert campaign.status == CampaignStatus.FINISHED, campaign
    evil_campaign = archive.create_campaign(name=EVIL, spec={**campaign.spec, "name": EVIL}, seed=0)
    evil = archive.add_candidate(
        campaign_id=evil_campaign.id,
        name=EVIL,
        thought=EVIL,
        source=f"# {EVIL}\ndef loss(policy_chosen_logps):\n    return policy_chosen_logps\n",
        origin="llm",
        status=CandidateStatus.REJECTED,
        reason=EVIL,
    )
    archive.engine.dispose()

    with _served({**env, "LOSSFORGE_API_TOKEN": TOKEN}, root, "serve.log") as url:
        yield Site(
            url=url,
            campaign_id=campaign.id,
            evil_campaign_id=evil_campaign.id,
            evil_candidate_id=evil.id,
            env=env,
            root=root,
        )


@contextmanager
def _served(env: dict[str, str], root: Path, log_name: str) -> Iterator[str]:
    """`lossforge serve` as its own process on a free loopback port; yields its URL."""
    port = _free_port()
    log = root / log_name
    with log.open("wb") as out:
        server = subprocess.Popen(
            [LOSSFORGE, "serve", "--port", str(port)],
            env=env,
            cwd=root,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(url, server, log)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(
            "Chromium is not on PATH: install it with `apt-get install -y chromium` "
            "(these tests never skip and never download a browser)."
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class Tab:
    """A browser tab on the site that keeps a screenshot of each page it checks."""

    page: Page
    site: Site
    shots: Path
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def open(self, route: str = "#/") -> Page:
        self.page.goto(f"{self.site.url}/{route}")
        return self.page

    def set_token(self, token: str) -> None:
        box = self.page.locator("#token")
        box.fill(token)
        box.dispatch_event("change")

    @contextmanager
    def showing(self, name: str) -> Iterator[Page]:
        """Checks inside fail with the path of a screenshot of the page as it was."""
        path = self.shots / f"{name}.png"
        try:
            yield self.page
        except AssertionError as exc:
            self.page.screenshot(path=path, full_page=True)
            raise AssertionError(f"{exc}\nscreenshot: {path}") from exc
        self.page.screenshot(path=path, full_page=True)


@pytest.fixture
def tab(browser: Browser, site: Site, tmp_path: Path) -> Iterator[Tab]:
    context = browser.new_context(accept_downloads=True, viewport={"width": 1360, "height": 900})
    tab = Tab(page=context.new_page(), site=site, shots=tmp_path)

    def on_request(request: Request) -> None:
        tab.requests.append(request.url)

    tab.page.on("request", on_request)
    tab.page.on("pageerror", lambda error: tab.errors.append(str(error)))
    yield tab
    context.close()
    assert not tab.errors, f"the page threw: {tab.errors} (screenshots: {tmp_path})"
    # Works offline: nothing but this server (and inline data) is ever asked for.
    foreign = [u for u in tab.requests if not u.startswith((site.url, "data:", "blob:"))]
    assert not foreign, f"the page reached outside its server: {foreign}"


def test_static_files_come_from_the_installed_packages(site: Site) -> None:
    plotly_js = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    with urllib.request.urlopen(f"{site.url}/static/plotly.min.js") as response:
        assert response.headers["Cache-Control"].startswith("public, max-age=")
        assert int(response.headers["Content-Length"]) == plotly_js.stat().st_size
    with urllib.request.urlopen(f"{site.url}/static/pygments.css") as response:
        assert ".hl .k " in response.read().decode()
    with urllib.request.urlopen(f"{site.url}/") as response:
        html = response.read().decode()
    assert "static/plotly.min.js?v=" in html and "__PLOTLY_VERSION__" not in html
    for name in ("app.py", "..", "%2e%2e%2f__init__.py", "__init__.py"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{site.url}/static/{name}")
        assert missing.value.code == 404, name
    for path in STATIC.iterdir():
        assert not re.search(r"(https?:)?//[a-z]", path.read_text(encoding="utf-8")), path


def test_responses_are_gzipped_for_clients_that_accept_it_but_events_are_not(site: Site) -> None:
    plotly_js = Path(str(resources.files("plotly") / "package_data" / "plotly.min.js"))
    accept = {"Accept-Encoding": "gzip"}
    request = urllib.request.Request(f"{site.url}/static/plotly.min.js", headers=accept)
    with urllib.request.urlopen(request) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        body = response.read()
    assert gzip.decompress(body) == plotly_js.read_bytes()
    assert len(body) < plotly_js.stat().st_size / 3
    board = f"{site.url}/api/campaigns/{site.campaign_id}/leaderboard?limit=500"
    with urllib.request.urlopen(urllib.request.Request(board, headers=accept)) as response:
        assert response.headers["Content-Encoding"] == "gzip"
        assert b'"rows"' in gzip.decompress(response.read())
    # The finished campaign's stream replays its events and ends; never buffered by a compressor.
    stream = f"{site.url}/api/campaigns/{site.campaign_id}/events"
    with urllib.request.urlopen(urllib.request.Request(stream, headers=accept)) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        assert response.headers.get("Content-Encoding") is None
        assert b"event: finish" in response.read()


def test_the_api_docs_render_offline(tab: Tab) -> None:
    # Swagger UI 5 from the installed package reads the OpenAPI 3.1 document; the tab fixture
    # fails the test if anything is fetched from outside the server or the page throws.
    page = tab.open("docs")
    with tab.showing("docs"):
        expect(page.locator(".swagger-ui .info .title")).to_contain_text("lossforge")
        start = page.locator(".opblock-post", has_text="/api/campaigns").first
        expect(start).to_be_visible()
        expect(page.locator(".swagger-ui .errors-wrapper")).to_have_count(0)
    with pytest.raises(urllib.error.HTTPError) as redoc:  # ReDoc would load from a CDN
        urllib.request.urlopen(f"{tab.site.url}/redoc")
    assert redoc.value.code == 404


def test_the_campaigns_page_lists_campaigns_and_prefills_the_form(tab: Tab) -> None:
    with tab.showing("campaigns") as page:
        tab.open()
        row = page.locator("#campaigns tbody tr", has_text="web-test")
        expect(row).to_have_count(1)
        expect(row).to_contain_text("FINISHED")
        expect(page.locator("#spec")).to_have_value(EXAMPLE_SPEC)


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
        expect(page.locator("#plot-reward-kl .textpoint", has_text="hinge")).to_have_count(1)
        # The stream replays the stored events up to `finish`, then the page closes it.
        expect(page.locator(".event-log .event.finish")).to_have_count(1)
        expect(page.locator(".live-state")).to_have_text(re.compile("stream closed"))
        expect(page.locator(".counters")).to_contain_text("evaluation")
        if target := os.environ.get("LOSSFORGE_WEB_SCREENSHOT"):
            page.wait_for_timeout(500)  # let plotly finish its transitions
            page.screenshot(path=target, full_page=True)

        # A finished campaign cannot be paused: the 409 is shown, with or without the token.
        pause = page.get_by_role("button", name="Pause")
        pause.click()
        expect(page.locator(".control-message")).to_contain_text("needs an API token")
        tab.set_token(TOKEN)
        pause.click()
        expect(page.locator(".control-message .errors")).to_contain_text("Pause refused")


def test_the_candidate_view_shows_code_curve_evaluations_and_exports(tab: Tab, site: Site) -> None:
    with tab.showing("candidate") as page:
        tab.open(f"#/campaigns/{site.campaign_id}")
        row = page.locator("#leaderboard tbody tr:not(.baseline)").first
        name = row.locator("td").nth(2).inner_text()
        row.get_by_role("link", name=name).click()
        expect(page.locator("h1 .candidate-name")).to_have_text(name)
        code = page.locator("#code")
        expect(code).to_contain_text("def loss")
        expect(code.locator("span").first).to_be_attached()  # highlighted, not plain text
        expect(page.locator("#plot-loss .scatterlayer .trace")).to_have_count(4)
        evaluations = page.locator("table.evaluations tbody tr")
        expect(evaluations.first).to_contain_text("DONE")
        expect(evaluations).to_have_count(2)  # tabular x 2 seeds

        with page.expect_download() as caught:
            page.locator("a.export").click()
        download = caught.value
        assert download.suggested_filename.endswith(".py"), download.suggested_filename
        assert "def loss" in Path(download.path()).read_text(encoding="utf-8")


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
    browser: Browser, site: Site, tmp_path: Path
) -> None:
    env = {**site.env, "LOSSFORGE_API_TOKEN": TOKEN, "LOSSFORGE_API_READ_AUTH": "true"}
    with _served(env, site.root, "serve-read-auth.log") as url:
        context = browser.new_context(viewport={"width": 1360, "height": 900})
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        tab = Tab(page=page, site=replace(site, url=url), shots=tmp_path)
        try:
            with tab.showing("read-auth") as shown:
                tab.open(f"#/campaigns/{site.campaign_id}")
                expect(shown.locator("body")).to_contain_text("needs an API token")
                tab.set_token(TOKEN)
                shown.reload()
                expect(shown.locator("#leaderboard tbody tr").nth(2)).to_be_visible()
                # The stream needs the token too (EventSource cannot send it; the reader does).
                expect(shown.locator(".event-log .event.finish")).to_have_count(1)
                expect(shown.locator(".live-state")).to_have_text(re.compile("stream closed"))
        finally:
            context.close()
        assert not errors, f"the page threw: {errors}"
