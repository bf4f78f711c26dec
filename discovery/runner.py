"""Wiring for one campaign run: archive, sandbox, Ray, proposer and engine, built in one place.

`create_campaign` stores a validated spec; `run_campaign` builds the collaborators, runs the engine
(new or resumed: the archive holds all state) and tears everything down. Settings come in as a
`RunnerConfig` built by the entry point; nothing here reads the environment. An LLM proposer whose
settings are incomplete raises `ProposerConfigError` before Ray or the sandbox start.

The campaign's lease is taken first (lease.py), before anything slow starts: a second engine is
refused at once (LeaseHeldError, naming the owner). The engine then writes through an archive
fenced by that lease and retrying transient database errors for `db_retry_s`. An engine that lost
its lease, or whose database stayed away, writes nothing more on its way out (LeaseLostError,
DatabaseUnavailableError propagate to the entry point, which prints one line).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from discovery import control, lease
from discovery.archive import (
    Archive,
    CampaignStatus,
    DatabaseUnavailableError,
    LeaseLostError,
    open_archive,
)
from discovery.engine import RESTARTABLE, Engine
from discovery.lease import LeaseConfig
from discovery.progress import Progress
from discovery.proposers.base import Proposer
from discovery.proposers.calls import CallRecord, Recorder
from discovery.proposers.evolve import EvolveConfig, EvolveProposer
from discovery.proposers.llm import Validator
from discovery.proposers.wiring import LLMSettings, build_llm_proposer
from discovery.scores import (
    LeaderboardRow,
    ProxyValidity,
    StageTasks,
    leaderboard,
    proxy_validity,
)
from discovery.spec import CampaignSpec, ProposerSpec, parse_spec
from evaluator.compare import stage_tasks
from evaluator.dispatch import DispatchConfig, RayDispatcher
from evaluator.errors import RayUnavailableError
from evaluator.hf.config import parse_hf_config
from evaluator.jobs import JUDGE_API_KEY
from evaluator.secrets import Secret
from sandbox import Sandbox, SandboxConfig


@dataclass(frozen=True)
class RunnerConfig:
    database_url: str  # the archive
    cache_dir: Path  # tinylm references and other caches
    ray_address: str | None = None  # None: a local Ray instance
    ray_auth_token: Secret | None = None  # the cluster's token; None: Ray's own, if any
    local_num_cpus: int | None = None  # CPUs of a local Ray instance; None: all
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    # The hf judge's API key (LOSSFORGE_JUDGE_API_KEY): sent to hf jobs beside their config,
    # never stored; None for endpoints without one.
    judge_api_key: Secret | None = None
    llm: LLMSettings = field(default_factory=LLMSettings)  # endpoint, model and key from settings
    lease: LeaseConfig = field(default_factory=LeaseConfig)  # one engine per campaign
    # How long the engine rides out database errors before it stops (leaving it resumable).
    db_retry_s: float = 30.0


def stage_extras(config: RunnerConfig) -> dict[str, dict[str, object]]:
    """Job-config values that are not spec fields: caches, and the judge's key for hf jobs."""
    extra: dict[str, dict[str, object]] = {
        "tinylm": {"cache_dir": str(config.cache_dir / "tinylm")}
    }
    if config.judge_api_key is not None:
        extra["hf"] = {JUDGE_API_KEY: config.judge_api_key}
    return extra


def stage_timeout(
    stage: str, config: dict[str, Any], default: float = DispatchConfig.timeout_s
) -> float:
    """Seconds a job of this stage may run before the dispatcher kills it: the default, or longer
    for an hf stage whose runs may take up to `max_seconds` (a run stops itself then; the margin
    covers what it does after its last step)."""
    if stage != "hf":
        return default
    return max(default, parse_hf_config(config).max_seconds + 600.0)


def dispatch_timeout(spec: CampaignSpec, default: float = DispatchConfig.timeout_s) -> float:
    """The longest `stage_timeout` of the spec's stages: one dispatcher serves them all."""
    return max(stage_timeout(s.name, s.config, default) for s in spec.stages)


def create_campaign(archive: Archive, spec: CampaignSpec) -> int:
    record = archive.create_campaign(
        name=spec.name, spec=spec.model_dump(mode="json"), seed=spec.seed
    )
    archive.append_event(campaign_id=record.id, kind="created", payload={"name": spec.name})
    return record.id


def build_proposer(
    spec: ProposerSpec,
    rng: np.random.Generator,
    *,
    llm: LLMSettings | None = None,
    recorder: Recorder | None = None,
    validator: Validator | None = None,
    dollar_budget: bool = False,
) -> Proposer:
    """The spec's proposer. LLM kinds also need `recorder` (stores each call) and take `validator`
    (the sandbox, for repair turns) and `llm` (settings the spec leaves to the environment)."""
    if spec.kind in ("llm", "hf-local"):
        if recorder is None:
            raise ValueError(f"a {spec.kind} proposer needs a recorder for its calls")
        return build_llm_proposer(
            spec,
            rng,
            settings=llm or LLMSettings(),
            recorder=recorder,
            validator=validator,
            dollar_budget=dollar_budget,
        )
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
    start_from: tuple[CampaignStatus, ...] = RESTARTABLE,
    parent_pid: int | None = None,
) -> CampaignStatus:
    """Run (or resume) a campaign to its end, pause, cancellation or budget.

    `start_from`: the statuses it may start from (the API's launcher passes PENDING only, so a
    pause sent while the process was starting is obeyed). `parent_pid`: the server that launched
    this engine; if it dies, the engine pauses itself. LeaseHeldError if another engine runs it."""
    base = open_archive(config.database_url, lease_ttl_s=config.lease.ttl_s)
    try:
        campaign = base.get_campaign(campaign_id)
        if campaign.status in (CampaignStatus.FINISHED, CampaignStatus.CANCELLED):
            base.engine.dispose()
            return campaign.status
        keeper = lease.take(base, campaign_id, config.lease, parent_pid=parent_pid)
    except BaseException:
        base.engine.dispose()
        raise
    keeper.start()
    archive = base.fenced(campaign_id, keeper.owner).retrying(config.db_retry_s)
    try:
        return _run_owned(config, archive, campaign_id, keeper, observer, start_from)
    finally:
        keeper.stop()
        base.engine.dispose()


def _run_owned(
    config: RunnerConfig,
    archive: Archive,
    campaign_id: int,
    keeper: lease.LeaseKeeper,
    observer: Callable[[Progress], None] | None,
    start_from: tuple[CampaignStatus, ...],
) -> CampaignStatus:
    """`run_campaign` once the lease is held; `archive` is fenced by it."""
    campaign = archive.get_campaign(campaign_id)
    spec = parse_spec(campaign.spec)
    # One seed for everything, advanced by how often the campaign has been (re)started, so a
    # resumed run does not replay the draws of the first.
    starts = len(archive.list_events(campaign_id=campaign_id, kind="started", limit=10**9))
    engine_rng, proposer_rng = np.random.default_rng([spec.seed, starts]).spawn(2)
    sandbox = Sandbox(config.sandbox)
    try:  # first, so that incomplete LLM settings are reported before anything starts
        proposer = build_proposer(
            spec.proposer,
            proposer_rng,
            llm=config.llm,
            recorder=call_recorder(archive, campaign_id),
            validator=sandbox,
            dollar_budget=spec.budget.llm_dollars is not None,
        )
    except Exception as exc:
        control.fail(archive, campaign_id, f"not started: {exc}", CampaignStatus.PAUSED, owned=True)
        raise
    dispatcher = RayDispatcher(
        DispatchConfig(
            address=config.ray_address,
            auth_token=config.ray_auth_token,
            local_num_cpus=config.local_num_cpus,
            timeout_s=dispatch_timeout(spec),
        )
    )
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
            proposer=proposer,
            rng=engine_rng,
            stage_extra=stage_extras(config),
            observer=observer,
            start_from=start_from,
            lease=keeper,
        )
        return engine.run()
    except (LeaseLostError, DatabaseUnavailableError):
        raise  # nothing can be written: the campaign reads INTERRUPTED once the lease expires
    except RayUnavailableError as exc:  # its sentence says what to do; then a resume
        control.fail(archive, campaign_id, f"not started: {exc}", CampaignStatus.PAUSED, owned=True)
        raise
    except Exception as exc:
        # Queued work stays PENDING (the engine leaves it so); FAILED says why, and a resume
        # (CLI --resume, or the API's resume) picks the campaign up again.
        control.fail(
            archive,
            campaign_id,
            f"the engine stopped on an error: {type(exc).__name__}: {exc}",
            owned=True,
        )
        raise
    finally:
        sandbox.close()
        dispatcher.close()


def call_recorder(archive: Archive, campaign_id: int) -> Recorder:
    """Stores each LLM call of a campaign in `llm_calls` (where the dollar budget is read)."""

    def record(call: CallRecord) -> None:
        archive.record_llm_call(
            campaign_id=campaign_id,
            purpose=call.purpose,
            model=call.model,
            prompt_tokens=call.prompt_tokens,
            completion_tokens=call.completion_tokens,
            cost_usd=call.cost_usd,
            latency_s=call.latency_s,
            error=call.error,
        )

    return record


def campaign_stages(spec: CampaignSpec) -> list[StageTasks]:
    """Each stage's public and held-out tasks and its selection seeds, as the leaderboard and
    the proxy-validity report read them."""
    stages = []
    for stage in spec.stages:
        held = stage_tasks(stage.name, stage.config)
        tasks = stage.task_names()
        stages.append(
            StageTasks(
                name=stage.name,
                public=[t for t in tasks if not held[t]],
                held_out=[t for t in tasks if held[t]],
                seeds=stage.seeds,
            )
        )
    return stages


def campaign_leaderboard(archive: Archive, campaign_id: int) -> list[LeaderboardRow]:
    return campaign_report(archive, campaign_id)[0]


def campaign_report(
    archive: Archive, campaign_id: int
) -> tuple[list[LeaderboardRow], ProxyValidity]:
    """The leaderboard and whether its proxy holds (Spearman's rho of public vs held-out
    scores, and between consecutive stages), from one read of the campaign."""
    stages = campaign_stages(parse_spec(archive.get_campaign(campaign_id).spec))
    candidates = archive.candidate_summaries(campaign_id=campaign_id)
    scores = archive.campaign_scores(campaign_id=campaign_id)
    return (
        leaderboard(candidates, scores, stages=stages),
        proxy_validity(candidates, scores, stages=stages),
    )
