"""Layer 5 (fingerprint.py): spellings of one loss share a fingerprint; different losses do not."""

from __future__ import annotations

import pytest

from evaluator.baselines import BASELINES
from sandbox.fingerprint import fingerprint
from tests.sandbox.helpers import rebuild
from tests.sandbox.sources import DELTA, DPO, DPO_SPELLINGS, HINGE, loss_source

# Batch statistics at batch size 1 warn (a std over one example); expected here.
pytestmark = pytest.mark.filterwarnings("ignore:.*degrees of freedom:UserWarning")


def test_spellings_of_dpo_share_one_fingerprint() -> None:
    assert len({fingerprint(rebuild(source)) for source in DPO_SPELLINGS}) == 1


def test_baselines_have_distinct_fingerprints() -> None:
    digests = {name: fingerprint(rebuild(b.source)) for name, b in BASELINES.items()}
    assert len(set(digests.values())) == len(digests)
    assert digests["dpo"] == fingerprint(rebuild(DPO))


def test_small_changes_change_the_fingerprint() -> None:
    base = fingerprint(rebuild(DPO))
    assert fingerprint(rebuild(HINGE)) != base
    assert fingerprint(rebuild(loss_source(f"return -F.logsigmoid(1.01 * beta * {DELTA})"))) != base
    assert fingerprint(rebuild(loss_source(f"return -F.logsigmoid(0.1 * {DELTA})"))) != base


def test_fingerprint_is_stable_and_does_not_mutate_the_graph() -> None:
    graph = rebuild(DPO)
    first = fingerprint(graph)
    assert fingerprint(graph) == first == fingerprint(rebuild(DPO))
    assert len(first) == 32
    assert next(graph.parameters(), None) is None
