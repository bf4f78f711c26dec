"""Shared fixtures: fresh real databases (SQLite files and PostgreSQL databases).

PostgreSQL tests are never skipped: if the server at LOSSFORGE_TEST_POSTGRES_URL cannot be reached
the fixture fails with the command that starts it. Each test that asks for a database gets a new,
empty one; PostgreSQL databases made by a session are dropped when it ends.
"""

from __future__ import annotations

import os

# No test may download anything: set before any module imports huggingface_hub, which reads it
# once at import.
os.environ["HF_HUB_OFFLINE"] = "1"

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import make_url

from discovery.archive import Archive, open_archive
from tests.ray_head import Cluster, ray_head

POSTGRES_URL = os.environ.get(
    "LOSSFORGE_TEST_POSTGRES_URL", "postgresql+psycopg://127.0.0.1:5432/test"
)
BACKENDS = ["sqlite", "postgresql"]


def _libpq(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[Callable[[], str]]:
    """A factory of new empty PostgreSQL databases on the test server; yields their URLs."""
    try:
        admin = psycopg.connect(_libpq(POSTGRES_URL), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({exc}). Start it with "
            "`pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` or set "
            "LOSSFORGE_TEST_POSTGRES_URL; the PostgreSQL tests are never skipped."
        )
    created: list[str] = []

    def new_database() -> str:
        name = f"lossforge_test_{uuid.uuid4().hex[:12]}"
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        created.append(name)
        return make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)

    yield new_database
    for name in created:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
    admin.close()


@pytest.fixture
def new_database_url(tmp_path: Path, request: pytest.FixtureRequest) -> Callable[[str], str]:
    """`new_database_url("sqlite" | "postgresql")` -> URL of a new, empty database."""
    counter = iter(range(1_000_000))

    def make(backend: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{tmp_path / f'archive-{next(counter)}.db'}"
        if backend == "postgresql":
            return request.getfixturevalue("postgres_server")()
        raise ValueError(f"unknown backend {backend!r}")

    return make


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, new_database_url: Callable[[str], str]) -> str:
    """A new, empty database on each backend in turn."""
    return new_database_url(request.param)


@pytest.fixture
def archive(database_url: str) -> Iterator[Archive]:
    """An archive with the current schema on each backend in turn."""
    store = open_archive(database_url)
    yield store
    store.engine.dispose()


@pytest.fixture(scope="session")
def shared_ray(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """One `ray start --head` cluster that the session's lossforge subprocesses may join (pass
    `shared_ray.client_env()`): a CLI run that starts its own local Ray spends longer starting it
    than running its jobs. Tests of the local path (no address set) still start their own."""
    with ray_head(tmp_path_factory.mktemp("shared-ray"), num_cpus=2) as cluster:
        yield cluster


# The slowest folders (engines killed and resumed, a served campaign in Chromium, the sandbox's
# pool, tinylm and hf training). `make test` runs `pytest -n 2 --dist load`: tests go to whichever
# worker is free, in collection order, so these go first and no worker runs alone at the end. A
# session fixture is built by each worker that needs it. (Keeping a folder on one worker was
# slower: 20 min 52 s against 17 min 42 s, and xdist's `loadgroup` does not group under pytest 9.2,
# pytest-xdist issue 1386.)
_SLOW_FOLDERS = (
    "tests/faults/",
    "tests/web/",
    "tests/sandbox/",
    "tests/evaluator/tinylm/",
    "tests/evaluator/hf/",
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::", 1)[0]
        return next(
            (i for i, f in enumerate(_SLOW_FOLDERS) if path.startswith(f)), len(_SLOW_FOLDERS)
        )

    items.sort(key=rank)  # stable: the order within a folder stays


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line per database backend, so a CI log shows the PostgreSQL tests ran (none skipped)."""
    counts: dict[str, dict[str, int]] = {b: {} for b in BACKENDS}
    for outcome in ("passed", "failed", "skipped", "error"):
        for report in terminalreporter.stats.get(outcome, []):
            if getattr(report, "when", "call") != "call" and outcome != "skipped":
                continue
            for backend in BACKENDS:
                if f"[{backend}" in report.nodeid:
                    counts[backend][outcome] = counts[backend].get(outcome, 0) + 1
    parts = [
        f"{backend}: " + (", ".join(f"{n} {o}" for o, n in sorted(c.items())) or "none ran")
        for backend, c in counts.items()
    ]
    terminalreporter.write_line("database backends: " + "; ".join(parts))
    # Where the browser tests left a screenshot of each view (tests/web/conftest.py writes them
    # under the run's basetemp, from whichever xdist worker ran them).
    shots = terminalreporter.config._tmp_path_factory.getbasetemp() / "screenshots"
    if shots.is_dir() and any(shots.iterdir()):
        terminalreporter.write_line(f"web page screenshots: {shots}")
