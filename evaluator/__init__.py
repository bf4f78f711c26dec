"""The evaluator's public interface: the only names `discovery` imports from this package.

Training losses on tasks (bandit, tinylm, hf), the stage configs that say how, the jobs that carry
them to workers, the queue and Ray backend that run them, and the paired statistics that turn
results into scores against DPO. Everything else under `evaluator/` is its own business and may
change without notice; tests/test_layers.py holds discovery to this list.

Each name is loaded on first use (PEP 562), so `import evaluator` costs nothing and reading a
spec or a leaderboard never imports torch or Ray: only the names that need them do (`plan` and
`summarize` do not; `RayDispatcher` and `cache_argument` do).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

# name -> the module that defines it
_EXPORTS = {
    # stage configs, parsed once (stage_configs.py) and their tasks (catalogue.py)
    "StageConfig": "evaluator.stage_configs",
    "StageConfigError": "evaluator.stage_configs",
    "BanditConfig": "evaluator.stage_configs",
    "TinyLMConfig": "evaluator.stage_configs",
    "HFConfig": "evaluator.stage_configs",
    "CONFIG_CLASSES": "evaluator.stage_configs",
    "parse_stage_config": "evaluator.stage_configs",
    "config_error": "evaluator.config_base",
    "stage_tasks": "evaluator.catalogue",
    "stage_metric": "evaluator.catalogue",
    # jobs and results
    "EvalJob": "evaluator.job",
    "StageName": "evaluator.job",
    "stage_timeout": "evaluator.job",
    "RunResult": "evaluator.results",
    "RunStatus": "evaluator.results",
    "LLMCall": "evaluator.results",
    "Secret": "evaluator.secrets",
    # running them: the port, the queue, the Ray backend
    "Evaluations": "evaluator.ports",
    "Backend": "evaluator.ports",
    "JobQueue": "evaluator.queue",
    "DispatchConfig": "evaluator.dispatch",
    "RayDispatcher": "evaluator.dispatch",
    "RayUnavailableError": "evaluator.errors",
    # one loss against DPO, and scores
    "BASELINES": "evaluator.baselines",
    "plan": "evaluator.compare",
    "summarize": "evaluator.compare",
    "pooled": "evaluator.compare",
    "TaskComparison": "evaluator.compare",
    "StageScore": "evaluator.scoring",
    "NO_SCORE": "evaluator.scoring",
    "aggregate": "evaluator.scoring",
    "frontier_tasks": "evaluator.scoring",
    "score_metric": "evaluator.scoring",
    "versus_dpo": "evaluator.scoring",
    "Correlation": "evaluator.stats",
    "spearman": "evaluator.stats",
    # for the hf-local proposer, which generates with a transformers model as tinylm does
    "cache_argument": "evaluator.tinylm.model",
}

__all__ = [
    "BASELINES",
    "CONFIG_CLASSES",
    "NO_SCORE",
    "Backend",
    "BanditConfig",
    "Correlation",
    "DispatchConfig",
    "EvalJob",
    "Evaluations",
    "HFConfig",
    "JobQueue",
    "LLMCall",
    "RayDispatcher",
    "RayUnavailableError",
    "RunResult",
    "RunStatus",
    "Secret",
    "StageConfig",
    "StageConfigError",
    "StageName",
    "StageScore",
    "TaskComparison",
    "TinyLMConfig",
    "aggregate",
    "cache_argument",
    "config_error",
    "frontier_tasks",
    "parse_stage_config",
    "plan",
    "pooled",
    "score_metric",
    "spearman",
    "stage_metric",
    "stage_tasks",
    "stage_timeout",
    "summarize",
    "versus_dpo",
]

if TYPE_CHECKING:
    from evaluator.baselines import BASELINES
    from evaluator.catalogue import stage_metric, stage_tasks
    from evaluator.compare import TaskComparison, plan, pooled, summarize
    from evaluator.config_base import config_error
    from evaluator.dispatch import DispatchConfig, RayDispatcher
    from evaluator.errors import RayUnavailableError
    from evaluator.job import EvalJob, StageName, stage_timeout
    from evaluator.ports import Backend, Evaluations
    from evaluator.queue import JobQueue
    from evaluator.results import LLMCall, RunResult, RunStatus
    from evaluator.scoring import (
        NO_SCORE,
        StageScore,
        aggregate,
        frontier_tasks,
        score_metric,
        versus_dpo,
    )
    from evaluator.secrets import Secret
    from evaluator.stage_configs import (
        CONFIG_CLASSES,
        BanditConfig,
        HFConfig,
        StageConfig,
        StageConfigError,
        TinyLMConfig,
        parse_stage_config,
    )
    from evaluator.stats import Correlation, spearman
    from evaluator.tinylm.model import cache_argument


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'evaluator' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return __all__
