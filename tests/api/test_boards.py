"""The API's leaderboard cache: computed once per change, served without a query while fresh, and
the previous board served while another reader recomputes; the lean reads it is built from give
the same rows as full records do."""

from __future__ import annotations

import threading

from api.boards import Boards
from discovery.archive import Archive
from discovery.runner import create_campaign
from discovery.scores import StageTasks, leaderboard
from discovery.service.leaderboard import campaign_leaderboard
from discovery.spec import parse_spec
from tests.api.conftest import SMALL_SPEC
from tests.factories import scored_candidate


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _campaign(archive: Archive, candidates: int = 4) -> int:
    cid = create_campaign(archive, parse_spec(SMALL_SPEC))
    for i in range(candidates):
        scored_candidate(
            archive,
            cid,
            "dpo" if i == 0 else f"c{i}",
            origin="baseline" if i == 0 else "evolve",
            scores=[0.0 if i == 0 else 0.01 * i * (seed + 1) for seed in (0, 1)],
        )
    return cid


def test_lean_reads_give_the_rows_full_records_give(archive: Archive) -> None:
    cid = _campaign(archive)
    full = leaderboard(
        archive.list_candidates(campaign_id=cid),
        archive.list_evaluations(campaign_id=cid),
        stages=[StageTasks("bandit", ["tabular"], [], seeds=2)],
    )
    assert campaign_leaderboard(archive, cid) == full
    # Ranked by the low end of the 95% interval: on two seeds, the steadiest gain leads, and
    # none beats DPO's exact 0 (c3's mean is the best, its interval the widest).
    assert [r.name for r in full] == ["dpo", "c1", "c2", "c3"]


def test_a_board_is_recomputed_only_when_its_campaign_changed(archive: Archive) -> None:
    cid = _campaign(archive)
    clock = Clock()
    boards = Boards(archive, max_age_s=2.0, clock=clock)
    first = boards.get(cid)
    assert boards.peek(cid) is first  # fresh: no query
    clock.now = 5.0
    assert boards.peek(cid) is None  # too old to trust without asking
    assert boards.get(cid) is first  # asked: nothing changed, same board
    late = archive.add_candidate(campaign_id=cid, name="late", source="x", origin="evolve")
    archive.append_event(campaign_id=cid, kind="verdict", payload={"candidate": late.id})
    assert boards.get(cid) is first  # checked 0 s ago: still trusted
    clock.now = 10.0
    second = boards.get(cid)
    assert second is not first and second.by_id[late.id][1].name == "late"
    page = second.page_json(cid, offset=1, limit=2)
    assert page.startswith(b'{"campaign_id": ') and page.count(b'"rank"') == 2


def test_readers_get_the_previous_board_while_one_recomputes(archive: Archive) -> None:
    cid = _campaign(archive)
    clock = Clock()
    boards = Boards(archive, max_age_s=1.0, clock=clock)
    old = boards.get(cid)
    archive.append_event(campaign_id=cid, kind="verdict", payload={})
    clock.now = 5.0
    boards._locks[cid].acquire()  # another reader is recomputing
    try:
        result: list[object] = []
        reader = threading.Thread(target=lambda: result.append(boards.get(cid)))
        reader.start()
        reader.join(timeout=10)
        assert result == [old]
    finally:
        boards._locks[cid].release()
    assert boards.get(cid) is not old
