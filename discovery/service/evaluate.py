"""One loss against DPO at one stage, under identical conditions: `lossforge evaluate`.

`prepare` parses the stage config (the one validator, `parse_stage_config`) and checks the tasks,
so a bad field or an unknown task is refused before anything starts. `evaluate_loss` then checks
that the Ray cluster can be joined (at once, before the sandbox's seconds), runs the loss and the
DPO baseline through the sandbox, and trains both rebuilt graphs on every task and seed as Ray
tasks (a local Ray instance, or the cluster at `ray_address`); a rejected loss is not trained.
The report is plain data: per task, the stage's metric for both and the score vs DPO (paired over
seeds), and the same pooled over the public and over the held-out tasks.

It stores nothing in the archive and prints nothing: the CLI shows the report.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from evaluator import (
    BASELINES,
    RayUnavailableError,
    RunResult,
    RunStatus,
    StageConfig,
    StageConfigError,
    StageName,
    TaskComparison,
    parse_stage_config,
    plan,
    pooled,
    score_metric,
    stage_tasks,
    stage_timeout,
    summarize,
)
from sandbox import Candidate, SandboxConfig, SandboxUnavailableError, Verdict

if TYPE_CHECKING:  # the runner imports the engine, the sandbox and torch: `prepare` needs none
    from discovery.runner import RunnerConfig

__all__ = [
    "EvaluationRequest",
    "EvaluationUnavailableError",
    "LossEvaluation",
    "RunStatus",
    "StageConfigError",
    "UnknownTaskError",
    "evaluate_loss",
    "prepare",
]


class UnknownTaskError(ValueError):
    """Tasks the stage does not have; the message lists those it has."""


class EvaluationUnavailableError(RuntimeError):
    """The sandbox or the Ray cluster cannot run; the message says which, and the fix."""


@dataclass(frozen=True)
class EvaluationRequest:
    stage: StageName
    config: StageConfig  # parsed once, here; every job carries it
    tasks: list[str]  # the tasks to train on: those asked for, or all of the stage's
    seeds: range  # the same seeds for the loss and for DPO


@dataclass(frozen=True)
class LossEvaluation:
    verdict: Verdict  # the sandbox's on the loss
    report: dict[str, Any] | None  # None when the loss was rejected (nothing was trained)
    failed: bool  # some run did not finish (its status and reason are in the report)


def prepare(
    stage: StageName, values: Mapping[str, Any], *, tasks: Sequence[str], seeds: range
) -> EvaluationRequest:
    """The request, or StageConfigError naming the bad field, UnknownTaskError naming the tasks;
    starts nothing."""
    config = parse_stage_config(stage, dict(values))
    known = stage_tasks(stage, config)
    unknown = [t for t in tasks if t not in known]
    if unknown:
        raise UnknownTaskError(f"unknown {stage} tasks {unknown}; known: {sorted(known)}")
    return EvaluationRequest(stage=stage, config=config, tasks=list(tasks or known), seeds=seeds)


def evaluate_loss(
    request: EvaluationRequest, candidate: Candidate | str, *, runner: RunnerConfig
) -> LossEvaluation:
    """The loss in `candidate` against DPO; EvaluationUnavailableError when the cluster cannot be
    joined or the sandbox cannot run. The workers get the settings a campaign's jobs get (the
    tinylm reference cache, the hf judge's key) from `runner`."""
    # Ray, torch and the engine: imported only once there is a loss to train.
    from discovery.runner import job_context  # noqa: PLC0415
    from evaluator import DispatchConfig, RayDispatcher  # noqa: PLC0415

    dispatcher = RayDispatcher(
        DispatchConfig(
            address=runner.ray_address,
            auth_token=runner.ray_auth_token,
            timeout_s=stage_timeout(request.stage, request.config, DispatchConfig.timeout_s),
        )
    )
    try:  # before the sandbox's seconds: a cluster that cannot be joined says so at once
        dispatcher.check()
    except RayUnavailableError as exc:
        raise EvaluationUnavailableError(str(exc)) from None
    verdict, dpo = _validate(candidate)
    if not verdict.accepted:
        return LossEvaluation(verdict=verdict, report=None, failed=False)
    context = job_context(runner)  # the worker values a campaign's jobs get
    jobs = plan(
        stage=request.stage,
        tasks=request.tasks,
        seeds=request.seeds,
        candidate=(verdict.candidate_name, verdict.graph_json or ""),
        baseline=("dpo", dpo.graph_json or ""),
        config=request.config,
        cache_dir=context.cache_dir,
        judge_api_key=context.judge_api_key,
    )
    try:
        dispatcher.start()  # a cluster was checked above; a local instance starts here
    except RayUnavailableError as exc:
        raise EvaluationUnavailableError(str(exc)) from None
    try:
        results = dispatcher.run_all(jobs)
    finally:
        dispatcher.close()
    comparisons = summarize(request.stage, jobs, results)
    return LossEvaluation(
        verdict=verdict,
        report=_report(comparisons, request.stage, score_metric(request.stage, request.config)),
        failed=any(r.status is not RunStatus.DONE for r in results),
    )


def _validate(candidate: Candidate | str) -> tuple[Verdict, Verdict]:
    """The sandbox's verdicts on the loss and on the DPO baseline (one pool for both)."""
    from sandbox import Sandbox  # noqa: PLC0415 (imports torch)

    try:
        with Sandbox(SandboxConfig(pool_size=1)) as sandbox:
            verdict = sandbox.validate(candidate)
            dpo = sandbox.validate(Candidate(name="dpo", thought="", code=BASELINES["dpo"].source))
    except SandboxUnavailableError as exc:
        raise EvaluationUnavailableError(f"the sandbox could not run: {exc}") from exc
    return verdict, dpo


def _report(comparisons: list[TaskComparison], stage: str, metric: str) -> dict[str, Any]:
    tasks = {}
    for c in comparisons:
        tasks[c.task] = {
            "held_out": c.held_out,
            "metric": metric,
            "candidate_mean": c.metric_mean(c.candidate, metric),
            "dpo_mean": c.metric_mean(c.baseline, metric),
            **c.score.as_dict(),
            "seeds": c.score.seeds,
            "candidate_runs": [_run(r) for r in c.candidate],
            "dpo_runs": [_run(r) for r in c.baseline],
        }
    return {
        "stage": stage,
        "metric": metric,
        "seeds": comparisons[0].seeds if comparisons else [],
        # Per seed, the mean over the public (held-out) tasks, then paired over seeds: the
        # numbers a campaign shows for this stage.
        "public": pooled(comparisons, held_out=False).as_dict(),
        "held_out": pooled(comparisons, held_out=True).as_dict(),
        "tasks": tasks,
    }


def _run(result: RunResult) -> dict[str, Any]:
    return {"status": str(result.status), "reason": result.reason, "metrics": result.metrics}
