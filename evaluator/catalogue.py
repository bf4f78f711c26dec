"""Each stage's tasks, and which are held out, known without importing the stages.

The bandit problem families and the tinylm task families are constants here, so the spec parser
and the CLI can name tasks without importing torch; a test holds them equal to
`evaluator.bandit.FAMILIES` and `evaluator.tinylm.TASKS`, which define the tasks. The hf stage's
tasks come from its config (one per beta of its grid, `HFConfig.tasks`). `stage_metric` says in
words what a stage's score measures (the leaderboard's column header), as evaluator/scoring.py
computes it.

This module builds no task and runs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from evaluator.stage_configs import HFConfig, StageConfig, parse_stage_config

__all__ = ["BANDIT_FAMILIES", "TINYLM_TASKS", "stage_metric", "stage_tasks"]

# evaluator.bandit.problems.FAMILIES, by name, in its order.
BANDIT_FAMILIES = ("tabular", "many_responses", "noisy", "shared_features")
# evaluator.tinylm.tasks.TASKS: name -> held out (private to the proposer), in its order.
TINYLM_TASKS: Mapping[str, bool] = {
    "arithmetic": False,
    "sorting": False,
    "reversal": False,
    "maximum": False,
    "sentiment": True,
    "helpfulness": True,
}


def stage_tasks(
    stage: str, config: StageConfig | Mapping[str, Any] | None = None
) -> dict[str, bool]:
    """The stage's tasks, each mapped to whether it is held out (private to the proposer).

    The hf stage's tasks come from its config (one per beta of its grid, all held out or none);
    a StageConfigError names a bad field of it.
    """
    if stage == "bandit":
        return dict.fromkeys(BANDIT_FAMILIES, False)
    if stage == "tinylm":
        return dict(TINYLM_TASKS)
    if stage == "hf":
        if config is None:
            raise ValueError("the hf stage's tasks come from its config (beta or betas); pass it")
        return cast(HFConfig, parse_stage_config("hf", config)).tasks
    raise ValueError(f"unknown stage {stage!r}; choose bandit, tinylm or hf")


# What a stage's score vs DPO measures, in the words of evaluator/scoring.py (higher is better).
_FIXED_METRICS: dict[str, tuple[str, str]] = {
    "bandit": (
        "frontier/area vs DPO",
        "area under the loss's own reward-KL curve over the beta grid, minus DPO's, per seed",
    ),
    "tinylm": (
        "reward/mean above DPO's reward-KL frontier",
        "reward/mean minus DPO's reward-KL frontier (its beta grid, same task and seed) at the "
        "candidate's KL to the reference",
    ),
}
# hf: the metric comes from the config; generation metrics are taken against DPO's frontier
# through its runs at every beta of the grid, the others against DPO at the same beta.
_HF_METRICS: dict[str, tuple[str, str]] = {
    "judge/win_rate": (
        "judge win rate above DPO's frontier",
        "the judge's win rate against the reference minus DPO's win-rate-KL frontier (its runs "
        "at every beta of the grid, same seed) at the candidate's KL",
    ),
    "reward/mean": (
        "reward/mean above DPO's reward-KL frontier",
        "the reward model's mean reward minus DPO's reward-KL frontier (its runs at every beta "
        "of the grid, same seed) at the candidate's KL",
    ),
}


def stage_metric(
    stage: str, config: StageConfig | Mapping[str, Any] | None = None
) -> tuple[str, str]:
    """(name, description) of what a score vs DPO at `stage` measures: a short column header
    and one sentence. The hf stage's metric comes from its config (without one: said in general
    terms)."""
    if stage in _FIXED_METRICS:
        return _FIXED_METRICS[stage]
    if stage == "hf" and config is None:
        return (
            "hf metric vs DPO",
            "the config's metric (judge win rate, reward or implicit reward accuracy) minus DPO's",
        )
    if stage == "hf":
        metric = cast(HFConfig, parse_stage_config("hf", config or {})).metric
        if metric in _HF_METRICS:
            return _HF_METRICS[metric]
        return (
            f"{metric} vs DPO",
            f"{metric} on held-out pairs minus DPO's at the same beta (no generations, no KL)",
        )
    raise ValueError(f"unknown stage {stage!r}; choose bandit, tinylm or hf")
