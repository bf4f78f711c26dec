"""What the server hands the browser: the page's ES modules and stylesheets, plotly and Swagger UI
from the installed packages, gzip for clients that accept it (never on the event stream), and
nothing outside the static folder."""

from __future__ import annotations

import gzip
import re
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.web.conftest import STATIC, Site, Tab

MODULES = sorted(p.name for p in STATIC.glob("*.js"))


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
    assert '<script type="module" src="static/app.js">' in html
    for name in ("app.py", "..", "%2e%2e%2f__init__.py", "__init__.py"):
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"{site.url}/static/{name}")
        assert missing.value.code == 404, name
    for path in STATIC.iterdir():
        assert not re.search(r"(https?:)?//[a-z]", path.read_text(encoding="utf-8")), path


def test_every_module_is_served_as_javascript_and_imports_only_its_siblings(site: Site) -> None:
    assert {"app.js", "core.js", "leaderboard.js", "compare.js", "genealogy.js"} <= set(MODULES)
    for name in MODULES:
        with urllib.request.urlopen(f"{site.url}/static/{name}") as response:
            assert response.headers["Content-Type"].startswith("text/javascript"), name
            assert response.headers["Cache-Control"] == "no-cache", name
            text = response.read().decode()
        assert len(text.splitlines()) < 400, f"{name} is over 400 lines"
        targets = re.findall(r'^(?:import|\}) .*from "([^"]+)";$', text, flags=re.M)
        assert name == "core.js" or targets, f"{name} imports nothing"
        for target in targets:
            assert target.startswith("./") and target[2:] in MODULES, (name, target)


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
