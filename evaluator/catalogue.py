"""Each stage's tasks, and which are held out, known without importing the stages.

The bandit problem families and the tinylm task families are constants here, so the spec parser
and the CLI can name tasks without importing torch; a test holds them equal to
`evaluator.bandit.FAMILIES` and `evaluator.tinylm.TASKS`, which define the tasks. The hf stage's
tasks come from its config (one per beta of its grid, `HFConfig.tasks`).

This module builds no task and runs nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, cast

from evaluator.stage_configs import HFConfig, StageConfig, parse_stage_config

__all__ = ["BANDIT_FAMILIES", "TINYLM_TASKS", "stage_tasks"]

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
