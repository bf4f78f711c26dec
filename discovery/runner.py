"""Wiring for one campaign run: archive, sandbox, Ray, proposer and engine, built in one place.

`create_campaign` stores a validated spec; `run_campaign` builds the collaborators, runs the engine
(new or resumed: the archive holds all state) and tears everything down. Settings come in as a
`RunnerConfig` built by the entry point; nothing here reads the environment.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from discovery.archive import Archive, CampaignStatus, open_archive
from discovery.engine import Engine
from discovery.progress import Progress
from discovery.proposers.base import Proposer
from discovery.proposers.evolve import EvolveConfig, EvolveProposer
from discovery.scores import LeaderboardRow, leaderboard
from discovery.spec import CampaignSpec, ProposerSpec, parse_spec
from evaluator.compare import stage_tasks
from evaluator.dispatch import DispatchConfig, RayDispatcher
from evaluator.hf.config import parse_hf_config
from evaluator.jobs import JUDGE_API_KEY
from evaluator.secrets import Secret
from sandbox import Sandbox, SandboxConfig


@dataclass(frozen=True)
class RunnerConfig:
    database_url: str  # the archive
    cache_dir: Path  # tinylm references and other caches
    ray_address: str | None = None  # None: a local Ray instance
    local_num_cpus: int | None = None  # CPUs of a local Ray instance; None: all
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    # The hf judge's API key (LOSSFORGE_JUDGE_API_KEY): sent to hf jobs beside their config,
    # never stored; None for endpoints without one.
    judge_api_key: Secret | None = None


def stage_extras(config: RunnerConfig) -> dict[str, dict[str, object]]:
    """Job-config values that are not spec fields: caches, and the judge's key for hf jobs."""
    extra: dict[str, dict[str, object]] = {
        "tinylm": {"cache_dir": str(config.cache_dir / "tinylm")}
    }
    if config.judge_api_key is not None:
        extra["hf"] = {JUDGE_API_KEY: config.judge_api_key}
    return extra


def dispatch_timeout(spec: CampaignSpec, default: float = DispatchConfig.timeout_s) -> float:
    """Seconds a job may run before the dispatcher kills it: the default, or longer for an hf
    stage whose runs may take up to `max_seconds` (a run stops itself then; the margin covers
    what it does after its last step)."""
    hf = [parse_hf_config(s.config).max_seconds for s in spec.stages if s.name == "hf"]
    return max([default, *(seconds + 600.0 for seconds in hf)])


def create_campaign(archive: Archive, spec: CampaignSpec) -> int:
    record = archive.create_campaign(
        name=spec.name, spec=spec.model_dump(mode="json"), seed=spec.seed
    )
    archive.append_event(campaign_id=record.id, kind="created", payload={"name": spec.name})
    return record.id


def build_proposer(spec: ProposerSpec, rng: np.random.Generator) -> Proposer:
    if spec.kind == "evolve":
        # The engine evaluates the baselines itself: re-proposing their trees verbatim would only
        # make duplicates, so seeds are varied rather than emitted unless a spec asks for them.
        options = {"emit_seeds": False, **spec.options}
        return EvolveProposer(EvolveConfig(**options), rng)
    raise ValueError(f"unknown proposer {spec.kind!r}")


def run_campaign(
    config: RunnerConfig,
    campaign_id: int,
    *,
    observer: Callable[[Progress], None] | None = None,
) -> CampaignStatus:
    """Run (or resume) a campaign to its end, pause, cancellation or budget."""
    archive = open_archive(config.database_url)
    campaign = archive.get_campaign(campaign_id)
    if campaign.status in (CampaignStatus.FINISHED, CampaignStatus.CANCELLED):
        return campaign.status
    spec = parse_spec(campaign.spec)
    # One seed for everything, advanced by how often the campaign has been (re)started, so a
    # resumed run does not replay the draws of the first.
    starts = len(archive.list_events(campaign_id=campaign_id, kind="started", limit=10**9))
    engine_rng, proposer_rng = np.random.default_rng([spec.seed, starts]).spawn(2)
    dispatcher = RayDispatcher(
        DispatchConfig(
            address=config.ray_address,
            local_num_cpus=config.local_num_cpus,
            timeout_s=dispatch_timeout(spec),
        )
    )
    sandbox = Sandbox(config.sandbox)
    try:
        # Ray and the sandbox each take seconds to start: start them side by side, and let Ray's
        # workers import the evaluator meanwhile.
        with ThreadPoolExecutor(max_workers=1) as pool:
            sandbox_started = pool.submit(sandbox.start)
            dispatcher.start()
            dispatcher.warm_up()
            sandbox_started.result()
        engine = Engine(
            campaign_id=campaign_id,
            spec=spec,
            archive=archive,
            sandbox=sandbox,
            dispatcher=dispatcher,
            proposer=build_proposer(spec.proposer, proposer_rng),
            rng=engine_rng,
            stage_extra=stage_extras(config),
            observer=observer,
        )
        return engine.run()
    finally:
        sandbox.close()
        dispatcher.close()
        archive.engine.dispose()


def campaign_leaderboard(archive: Archive, campaign_id: int) -> list[LeaderboardRow]:
    spec = parse_spec(archive.get_campaign(campaign_id).spec)
    stages = []
    for stage in spec.stages:
        held = stage_tasks(stage.name, stage.config)
        tasks = stage.task_names()
        stages.append(
            (stage.name, [t for t in tasks if not held[t]], [t for t in tasks if held[t]])
        )
    return leaderboard(
        archive.list_candidates(campaign_id=campaign_id),
        archive.list_evaluations(campaign_id=campaign_id),
        stages=stages,
    )
