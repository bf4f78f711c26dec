"""The archive's shape: small modules, one `Archive` with a pinned surface, every method retried."""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

import discovery.archive
from discovery.archive import Archive, DatabaseUnavailableError, open_archive
from tests.factories import make_campaign

MAX_LINES = 450

# Callers in every package hold `Archive` and call these by name: a rename breaks them.
PUBLIC = {
    "acquire_lease",
    "add_candidate",
    "add_evaluation",
    "append_event",
    "campaign_counts",
    "campaign_scores",
    "campaign_stamp",
    "candidate_counts",
    "candidate_summaries",
    "count_candidates",
    "count_baselines_by_campaign",
    "count_candidates_by_campaign",
    "count_events",
    "create_campaign",
    "evaluation_durations",
    "fenced",
    "find_by_canonical_code",
    "find_by_fingerprint",
    "finish_evaluation",
    "get_campaign",
    "get_candidate",
    "get_candidates",
    "list_campaigns",
    "list_candidates",
    "list_evaluations",
    "list_events",
    "list_llm_calls",
    "llm_cost",
    "llm_totals",
    "record_llm_call",
    "rejection_counts",
    "release_lease",
    "renew_lease",
    "retrying",
    "set_budget_used",
    "set_campaign_status",
    "set_score",
    "transition_campaign",
    "update_candidate",
}
VIEWS = {"fenced", "retrying"}  # build views of the store; they touch no database


def test_no_archive_module_is_long() -> None:
    root = Path(discovery.archive.__file__).parent
    lengths = {
        str(path.relative_to(root)): len(path.read_text().splitlines())
        for path in root.rglob("*.py")
    }
    assert {name: n for name, n in lengths.items() if n > MAX_LINES} == {}


def test_the_public_methods_are_pinned() -> None:
    public = {
        name
        for name in dir(Archive)
        if not name.startswith("_") and inspect.isfunction(inspect.getattr_static(Archive, name))
    }
    assert public == PUBLIC


@pytest.mark.parametrize("name", sorted(PUBLIC - VIEWS))
def test_every_method_runs_in_the_retry_window_once(name: str) -> None:
    method = inspect.getattr_static(Archive, name)
    inner = getattr(method, "__wrapped__", None)
    assert inner is not None, f"Archive.{name} is not wrapped in the retry window"
    assert not hasattr(inner, "__wrapped__"), f"Archive.{name} is wrapped twice"


@pytest.mark.parametrize("name", sorted(VIEWS))
def test_views_are_not_retried(name: str) -> None:
    assert not hasattr(inspect.getattr_static(Archive, name), "__wrapped__")


@pytest.fixture
def sqlite_archive(tmp_path: Path) -> Iterator[Archive]:
    """The retry wrapping is the same on both backends: one is enough here."""
    store = open_archive(f"sqlite:///{tmp_path / 'archive.db'}")
    yield store
    store.engine.dispose()


class _FlakyArchive(Archive):
    """An archive whose next `failures` sessions fail as a dropped connection does."""

    failures = 0

    @contextmanager
    def _read(self) -> Iterator[Session]:
        if self.failures > 0:
            self.failures -= 1
            raise OperationalError("SELECT", {}, Exception("server closed the connection"))
        with super()._read() as session:
            yield session


def test_a_retrying_view_rides_out_a_dropped_connection(sqlite_archive: Archive) -> None:
    archive = sqlite_archive
    campaign = make_campaign(archive)
    archive.append_event(campaign_id=campaign.id, kind="started")
    flaky = _FlakyArchive(archive.engine, lease_ttl_s=archive.lease_ttl_s)
    flaky.failures = 1
    with pytest.raises(OperationalError):
        flaky.count_events(campaign_id=campaign.id)  # no retry window: the error comes through
    retrying = flaky.retrying(30)
    assert isinstance(retrying, _FlakyArchive)
    retrying.failures = 2
    assert retrying.count_events(campaign_id=campaign.id) == 1
    retrying.failures = 1
    assert retrying.get_campaign(campaign.id).id == campaign.id
    short = flaky.retrying(0.05)
    short.failures = 10**6
    with pytest.raises(DatabaseUnavailableError, match=r"did not answer for 0\.05 s"):
        short.list_campaigns()


def test_views_are_archives_of_the_same_database(sqlite_archive: Archive) -> None:
    archive = sqlite_archive
    fenced = archive.fenced(1, "owner").retrying(5)
    assert isinstance(fenced, Archive)
    assert fenced.engine is archive.engine and fenced.lease_ttl_s == archive.lease_ttl_s
    assert archive.retry_s == 0.0  # a view leaves the store it came from as it was
