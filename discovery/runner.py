"""Wiring for one campaign run: archive, sandbox, Ray, proposer and engine, built in one place.

`create_campaign` stores a validated spec; `run_campaign` builds the collaborators, runs the engine
(new or resumed: the archive holds all state) and tears everything down. Settings come in as a
`RunnerConfig` built by the entry point; nothing here reads the environment. An LLM proposer whose
settings are incomplete raises `ProposerConfigError` before Ray or the sandbox start.

The campaign's lease is taken first (lease.py), before anything slow starts: a second engine is
refused at once (LeaseHeldError, naming the owner). The engine then writes through an archive
fenced by that lease and retrying transient database errors for `db_retry_s`. Starting Ray and
the sandbox is the slowest step of a start: a `phase` event says so before it begins. An engine
that lost its lease, or whose database stayed away, writes nothing more on its way out
(LeaseLostError, DatabaseUnavailableError propagate to the entry point, which prints one line).
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from discovery import control, lease
from discovery.archive import (
    Archive,
    CampaignStatus,
    DatabaseUnavailableError,
    LeaseLostError,
    open_archive,
)
from discovery.engine import RESTARTABLE, Engine, JobContext
from discovery.lease import LeaseConfig
from discovery.progress import Progress
from discovery.proposers.base import Proposer
from discovery.proposers.evolve.proposer import EvolveConfig, EvolveProposer
from discovery.proposers.llm.calls import Recorder
from discovery.proposers.llm.proposer import Validator
from discovery.proposers.llm.wiring import LLMSettings, build_llm_proposer
from discovery.spec import CampaignSpec, ProposerSpec, parse_spec
from evaluator import (
    DispatchConfig,
    JobQueue,
    LLMCall,
    RayDispatcher,
    RayUnavailableError,
    Secret,
)
from evaluator import stage_timeout as _stage_timeout
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


def job_context(config: RunnerConfig) -> JobContext:
    """Job values that are not spec fields: the workers' cache, and the judge's key."""
    return JobContext(
        cache_dir=str(config.cache_dir / "tinylm"), judge_api_key=config.judge_api_key
    )


def dispatch_timeout(spec: CampaignSpec, default: float = DispatchConfig.timeout_s) -> float:
    """The longest job timeout of the spec's stages (`evaluator.stage_timeout`): one dispatcher
    serves them all."""
    return max(_stage_timeout(s.name, s.config, default) for s in spec.stages)


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
    starts = archive.count_events(campaign_id=campaign_id, kind="started")
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
        # workers import the evaluator meanwhile. The slowest part of a start: say so first.
        where = config.ray_address or "a local instance"
        archive.append_event(
            campaign_id=campaign_id,
            kind="phase",
            payload={
                "phase": "backend",
                "detail": f"starting the evaluation backend (Ray, {where}) and the sandbox",
            },
        )
        keeper.report(phase="backend")
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
            evaluations=JobQueue(dispatcher),
            proposer=proposer,
            rng=engine_rng,
            job_context=job_context(config),
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

    def record(call: LLMCall) -> None:
        archive.record_llm_call(campaign_id=campaign_id, call=call)

    return record
