"""Fixtures of the web page's tests: a real `lossforge serve` and a real headless Chromium, each
started once per test session and shared by every module here.

Once per session a small real campaign runs with the CLI (`lossforge run`, a local Ray). Then a
few rows are added through the archive API, as the engine would write them: a campaign and a
rejected candidate whose names are HTML, an LLM-written candidate with the two calls (a proposal
and a repair turn) behind it, and a duplicate. The server is started as a user starts it, with an
API token and an LLM key that must never reach the page. Chromium is the system's (Debian's
`chromium`): without it these tests fail, never skip, and they never download a browser.

Each test gets its own browser context. A screenshot of each view is kept under
`<basetemp>/screenshots/<view>.png` (the folder is printed at the end of the run);
LOSSFORGE_WEB_SCREENSHOTS=<dir> saves them there too (how the README's images are made).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, expect, sync_playwright

from discovery.archive import CampaignStatus, CandidateStatus, open_archive
from evaluator import LLMCall

LOSSFORGE = str(Path(sys.executable).parent / "lossforge")
STATIC = Path(str(resources.files("api.web") / "static"))
EXAMPLE_SPEC = (STATIC / "example-spec.yaml").read_text(encoding="utf-8")
TOKEN = "web-test-token-5b1d0e"
LLM_KEY = "sk-web-test-llm-key-9f8e7d"  # the server's LLM key: never on any page
# What an LLM could name a candidate; shown as text, it never runs.
EVIL = '<script>window.__xss = 1</script><img src=x onerror="window.__xss = 2">'
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
PROMPT_HASH = "0123456789abcdef"
PROMPT = "Write a preference loss that is robust to label noise."
REPLY = "def loss(policy_chosen_logps):\n    return -policy_chosen_logps  # the reply"
REPAIR = "The sandbox said: a loss must return a tensor of shape (B,). Fix it."
WIDE = {"width": 1360, "height": 900}
PHONE = {"width": 390, "height": 844}

expect.set_options(timeout=15_000)


@dataclass(frozen=True)
class Site:
    url: str
    campaign_id: int  # the finished campaign
    evil_campaign_id: int  # a campaign named in HTML, not started
    evil_candidate_id: int  # a rejected candidate of it whose name, thought and reason are HTML
    llm_candidate_id: int  # an LLM-written candidate of the finished campaign, two calls behind it
    duplicate_id: int  # a duplicate of a scored candidate of the finished campaign
    duplicated_id: int  # the candidate it duplicates
    env: dict[str, str]  # the server's environment (its archive)
    root: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_healthy(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            pytest.fail(
                f"`lossforge serve` exited ({server.returncode}):\n{log.read_text()[-3000:]}"
            )
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    pytest.fail(f"`lossforge serve` did not answer /healthz in 60 s:\n{log.read_text()[-3000:]}")


@contextmanager
def served(env: dict[str, str], root: Path, log_name: str) -> Iterator[str]:
    """`lossforge serve` as its own process on a free loopback port; yields its URL."""
    port = free_port()
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


def _add_rows(database_url: str, campaign_id: int) -> dict[str, int]:
    """The rows no short offline campaign writes: HTML names, an LLM candidate, a duplicate."""
    archive = open_archive(database_url)
    try:
        campaign = archive.get_campaign(campaign_id)
        assert campaign.status == CampaignStatus.FINISHED, campaign
        evil_campaign = archive.create_campaign(
            name=EVIL, spec={**campaign.spec, "name": EVIL}, seed=0
        )
        evil = archive.add_candidate(
            campaign_id=evil_campaign.id,
            name=EVIL,
            thought=EVIL,
            source=f"# {EVIL}\ndef loss(policy_chosen_logps):\n    return policy_chosen_logps\n",
            origin="llm",
            status=CandidateStatus.REJECTED,
            reason=EVIL,
        )
        scored = [
            c
            for c in archive.candidate_summaries(campaign_id=campaign_id)
            if c.origin != "baseline" and c.status == CandidateStatus.EVALUATED
        ]
        assert scored, "the web-test campaign evaluated no proposed candidate"
        parent = scored[0]
        source = archive.get_candidate(parent.id).source
        # A proposal, then a repair turn in the same conversation (its messages begin with the
        # proposal's and its reply): the candidate's provenance names the proposal's hash.
        asked = (
            {"role": "system", "content": "You write losses."},
            {"role": "user", "content": PROMPT},
        )
        repair = (
            *asked,
            {"role": "assistant", "content": "def loss(:"},
            {"role": "user", "content": REPAIR},
        )
        for purpose, messages, reply, hashed in (
            ("propose", asked, "def loss(:", PROMPT_HASH),
            ("repair", repair, REPLY, "fedcba9876543210"),
        ):
            archive.record_llm_call(
                campaign_id=campaign_id,
                call=LLMCall(
                    purpose=purpose,
                    model="test-model-7b",
                    prompt_tokens=1234,
                    completion_tokens=56,
                    cost_usd=0.0042,
                    latency_s=1.25,
                    messages=messages,
                    reply=reply,
                    prompt_hash=hashed,
                ),
            )
        llm = archive.add_candidate(
            campaign_id=campaign_id,
            name="robust-noise-llm",
            thought="Down-weight pairs the policy already separates.",
            source=REPLY + "\n",
            origin="llm",
            status=CandidateStatus.REJECTED,
            reason="a loss must return a tensor of shape (B,)",
            parent_ids=[parent.id],
            provenance={"model": "test-model-7b", "prompt_hash": PROMPT_HASH, "proposer": "llm"},
        )
        duplicate = archive.add_candidate(
            campaign_id=campaign_id,
            name=f"{parent.name}-again",
            source=source,
            origin="evolve",
            parent_ids=[parent.id],
            island=0,
            provenance={
                "genome": {"terms": [{"op": "logsigmoid", "scale": i} for i in range(300)]}
            },
        )
        archive.update_candidate(
            duplicate.id,
            status=CandidateStatus.DUPLICATE,
            reason=f"behaves as #{parent.id}",
            verdict={"status": "accepted", "reasons": []},
            duplicate_of=parent.id,
        )
        return {
            "evil_campaign_id": evil_campaign.id,
            "evil_candidate_id": evil.id,
            "llm_candidate_id": llm.id,
            "duplicate_id": duplicate.id,
            "duplicated_id": parent.id,
        }
    finally:
        archive.engine.dispose()


@pytest.fixture(scope="session")
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
    archive.engine.dispose()
    added = _add_rows(database_url, campaign.id)
    server_env = {**env, "LOSSFORGE_API_TOKEN": TOKEN, "LOSSFORGE_LLM_API_KEY": LLM_KEY}
    with served(server_env, root, "serve.log") as url:
        yield Site(url=url, campaign_id=campaign.id, env=env, root=root, **added)


@pytest.fixture(scope="session")
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


def _run_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The run's basetemp: under pytest-xdist a worker's is a `popen-gwN` folder inside it."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = _run_folder(tmp_path_factory) / "screenshots"
    folder.mkdir(exist_ok=True)
    return folder


@dataclass
class Tab:
    """A browser tab on the site that keeps a screenshot of each page it checks."""

    page: Page
    site: Site
    shots: Path  # this test's folder: a screenshot of each check, kept on failure too
    views: Path  # the session's folder: one screenshot per view
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

    def snap(self, view: str, *, top: str | None = None) -> Path:
        """The view as it is now, into the session's folder (and LOSSFORGE_WEB_SCREENSHOTS);
        `top`: a selector scrolled to the top of the window first."""
        if top:
            self.page.locator(top).first.evaluate("el => el.scrollIntoView({block: 'start'})")
        self.page.mouse.move(0, 0)  # no hover label or plot mode bar in the picture
        # Two animation frames: whatever plotly or the layout queued is painted.
        self.page.evaluate(
            "() => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)))"
        )
        path = self.views / f"{view}.png"
        self.page.screenshot(path=path)
        if target := os.environ.get("LOSSFORGE_WEB_SCREENSHOTS"):
            Path(target).mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, Path(target) / path.name)
        return path


@contextmanager
def new_tab(
    browser: Browser, site: Site, tmp_path: Path, views: Path, viewport: dict[str, int]
) -> Iterator[Tab]:
    context = browser.new_context(accept_downloads=True, viewport=viewport)
    tab = Tab(page=context.new_page(), site=site, shots=tmp_path, views=views)

    def on_request(request: Request) -> None:
        tab.requests.append(request.url)

    tab.page.on("request", on_request)
    tab.page.on("pageerror", lambda error: tab.errors.append(str(error)))
    try:
        yield tab
    finally:
        context.close()
    assert not tab.errors, f"the page threw: {tab.errors} (screenshots: {tmp_path})"
    # Works offline: nothing but this server (and inline data) is ever asked for.
    foreign = [u for u in tab.requests if not u.startswith((site.url, "data:", "blob:"))]
    assert not foreign, f"the page reached outside its server: {foreign}"


@pytest.fixture
def tab(browser: Browser, site: Site, tmp_path: Path, screenshots: Path) -> Iterator[Tab]:
    with new_tab(browser, site, tmp_path, screenshots, WIDE) as tab:
        yield tab


@pytest.fixture
def phone(browser: Browser, site: Site, tmp_path: Path, screenshots: Path) -> Iterator[Tab]:
    with new_tab(browser, site, tmp_path, screenshots, PHONE) as tab:
        yield tab
