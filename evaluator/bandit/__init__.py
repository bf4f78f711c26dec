"""The `bandit` stage: tabular preference problems with a known optimum (seconds a candidate)."""

from evaluator.bandit.problems import FAMILIES, BanditFamily, BanditProblem, make_problem
from evaluator.bandit.stage import BanditConfig, run_bandit, run_bandit_population

__all__ = [
    "FAMILIES",
    "BanditConfig",
    "BanditFamily",
    "BanditProblem",
    "make_problem",
    "run_bandit",
    "run_bandit_population",
]
