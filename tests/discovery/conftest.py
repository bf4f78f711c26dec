"""Fixtures of the engine tests: one local Ray and one sandbox per module, runs in process, and a
scripted OpenAI-compatible server on loopback for the LLM proposers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import ray

from discovery.archive import Archive, CampaignStatus, open_archive
from discovery.engine import Engine, JobContext
from discovery.progress import Progress
from discovery.proposers.base import Proposer
from discovery.runner import build_proposer, create_campaign
from discovery.spec import CampaignSpec, parse_spec
from evaluator.dispatch import DispatchConfig, RayDispatcher
from evaluator.queue import JobQueue
from sandbox import Sandbox, SandboxConfig
from tests.openai_server import ScriptedServer


@pytest.fixture(scope="module")
def ray_local() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _node_ip_address="127.0.0.1")
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(pool_size=1)) as box:
        yield box


@pytest.fixture
def openai_server() -> Iterator[ScriptedServer]:
    """A scripted OpenAI-compatible endpoint on loopback (openai_server.py); push its replies."""
    server = ScriptedServer().start()
    yield server
    server.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Archive]:
    archive = open_archive(f"sqlite:///{tmp_path / 'archive.db'}")
    yield archive
    archive.engine.dispose()


def small_spec(**overrides: object) -> CampaignSpec:
    """A bandit-only campaign that runs in seconds."""
    data: dict[str, object] = {
        "name": "test",
        "seed": 3,
        "proposer": {"kind": "evolve", "batch_size": 3},
        "stages": [
            {"name": "bandit", "tasks": ["tabular"], "seeds": 1, "config": {"max_steps": 30}}
        ],
        "budget": {"candidates": 6},
        "baselines": ["dpo", "hinge"],
        "max_in_flight": 4,
    }
    data.update(overrides)
    return parse_spec(data)


RunEngine = Callable[..., tuple[int, CampaignStatus]]


@pytest.fixture
def run_engine(ray_local: None, sandbox: Sandbox, store: Archive, tmp_path: Path) -> RunEngine:
    """run_engine(spec, campaign_id=None, proposer=None, observer=None) -> (id, final status)."""

    def run(
        spec: CampaignSpec,
        campaign_id: int | None = None,
        proposer: Proposer | None = None,
        observer: Callable[[Progress], None] | None = None,
    ) -> tuple[int, CampaignStatus]:
        cid = campaign_id or create_campaign(store, spec)
        rng = np.random.default_rng(spec.seed)
        engine = Engine(
            campaign_id=cid,
            spec=spec,
            archive=store,
            sandbox=sandbox,
            evaluations=JobQueue(RayDispatcher(DispatchConfig())),
            proposer=proposer or build_proposer(spec.proposer, rng),
            rng=rng,
            job_context=JobContext(cache_dir=str(tmp_path / "cache")),
            observer=observer,
        )
        return cid, engine.run()

    return run
