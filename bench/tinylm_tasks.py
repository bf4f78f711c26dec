"""Reward-KL trade-off of the tinylm task families: DPO over a grid of beta multipliers.

    .venv/bin/python bench/tinylm_tasks.py [--families a,b] [--seeds 0,1,2]
        [--multipliers 0.25,0.5,1,2,4,8,16] [--max-steps 128] [--cache-dir DIR] [--threads 1]

For each family and seed, DPO at beta = m * TinyLMConfig.beta for every multiplier m trains as one
population (`run_tinylm_population`, same data and batch order for every m) with the default
TinyLMConfig otherwise (--max-steps overrides its max_steps). Printed as markdown, per family and
multiplier (means over seeds, the spread across seeds after ±):

- `reward/mean`: true reward of policy samples on held-out prompts;
- `reward/ref_mean`: the same for the reference (the same for every multiplier);
- `best`: the true reward of the family's optimal completions (`TaskFamily.best_completion`) on
  the same held-out prompts, the ceiling a policy could reach;
- `share of best`: reward/mean over best (DPO at x1 should sit well below 1: no ceiling);
- `kl/ref`: KL(pi || pi_ref) per sequence, in nats;
- `held-out acc`: implicit reward accuracy on held-out pairs ranked by the TRUE reward
  (`rewards/accuracies`): above 0.5, the policy learned some of what is wanted from proxy labels.

Over-optimization shows as reward/mean falling at the small multipliers (large KL): the
preference labels come from each family's misspecified proxy reward, which the policy exploits
when the KL leash is loose. Also printed: seconds per candidate run (the population's wall time
over its size, reference training excluded; the first call of a family also trains its reference,
timed apart), so the cost of a family at a given --max-steps can be compared.

Small multipliers mean a small beta: beta x 1/4 is the loosest leash, beta x 16 the tightest.
References are cached under --cache-dir (default: a folder in the system temporary directory).
One population of 7 at 128 steps takes about 10 s per family and seed on one CPU thread.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# bench/ holds a kernels.py that would shadow the `kernels` package transformers imports.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here downloads; make sure of it

import argparse  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from evaluator.losses import Loss  # noqa: E402
from evaluator.results import RunStatus  # noqa: E402
from evaluator.tinylm.reference import load_reference  # noqa: E402
from evaluator.tinylm.stage import (  # noqa: E402
    TASKS,
    TinyLMConfig,
    derive_seed,
    run_tinylm_population,
)


def dpo_times(multiplier: float) -> Loss:
    """DPO with beta scaled by `multiplier` (a plain function of the contract's signature)."""

    def fn(
        policy_chosen_logps: torch.Tensor,
        policy_rejected_logps: torch.Tensor,
        ref_chosen_logps: torch.Tensor,
        ref_rejected_logps: torch.Tensor,
        beta: torch.Tensor,
    ) -> torch.Tensor:
        margin = (policy_chosen_logps - ref_chosen_logps) - (
            policy_rejected_logps - ref_rejected_logps
        )
        return -F.logsigmoid(multiplier * beta * margin)

    return Loss(name=f"dpo-x{multiplier:g}", fn=fn, optional_inputs=frozenset())


def best_reward(task: str, config: TinyLMConfig) -> float:
    """Mean true reward of the family's optimal completions on the stage's held-out prompts."""
    family = TASKS[task]
    prompts = family.sample_prompts(
        config.num_eval_prompts,
        "heldout",
        np.random.default_rng(derive_seed(config.sft.seed, "prompts")),
    )
    return float(np.mean([family.reward(p, family.best_completion(p)) for p in prompts]))


def _fmt(values: list[float], digits: int = 3) -> str:
    mean = statistics.fmean(values)
    if len(values) < 2:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}"


def run(
    families: list[str],
    seeds: list[int],
    multipliers: list[float],
    config: TinyLMConfig,
    cache_dir: Path,
    echo: Callable[[str], None] = print,
) -> None:
    """Train, then print the markdown table and the timings."""
    losses = [dpo_times(m) for m in multipliers]
    rows: list[str] = []
    timings: list[str] = []
    for task in families:
        start = time.monotonic()
        load_reference(
            TASKS[task],
            model_config=config.model,
            sft_config=config.sft,
            cache_dir=cache_dir,
        )
        ref_seconds = time.monotonic() - start
        best = best_reward(task, config)
        per_m: dict[float, dict[str, list[float]]] = {
            m: {"reward": [], "ref": [], "kl": [], "share": [], "acc": []} for m in multipliers
        }
        run_seconds: list[float] = []
        for seed in seeds:
            results = run_tinylm_population(
                losses, task=task, seed=seed, config=config, cache_dir=cache_dir
            )
            run_seconds.append(results[0].seconds)
            for m, result in zip(multipliers, results, strict=True):
                if result.status is not RunStatus.DONE:
                    echo(f"{task} seed {seed} x{m:g}: {result.status.value} {result.reason}")
                    continue
                metrics = result.metrics
                per_m[m]["reward"].append(metrics["reward/mean"])
                per_m[m]["ref"].append(metrics["reward/ref_mean"])
                per_m[m]["kl"].append(metrics["kl/ref"])
                per_m[m]["share"].append(metrics["reward/mean"] / best)
                per_m[m]["acc"].append(metrics["rewards/accuracies"])
        kind = "held-out" if TASKS[task].held_out else "public"
        for m in multipliers:
            got = per_m[m]
            if not got["reward"]:
                continue
            rows.append(
                f"| {task} ({kind}) | x{m:g} | {_fmt(got['reward'])} | {_fmt(got['ref'])} | "
                f"{best:.3f} | {statistics.fmean(got['share']):.2f} | {_fmt(got['kl'], 2)} | "
                f"{statistics.fmean(got['acc']):.2f} |"
            )
        timings.append(
            f"| {task} | {config.max_steps} | {statistics.fmean(run_seconds):.2f} | "
            f"{ref_seconds:.1f} |"
        )
        echo(f"done {task} ({time.monotonic() - start:.0f} s)")
    echo("")
    echo(f"seeds {seeds}, {config.max_steps} steps, beta = multiplier x {config.beta:g}")
    echo("")
    echo(
        "| family | beta x | reward/mean | reward/ref_mean | best | share of best | kl/ref "
        "| held-out acc |"
    )
    echo("|---|---|---|---|---|---|---|---|")
    for row in rows:
        echo(row)
    echo("")
    echo("| family | steps | seconds per candidate run | reference (train or load), s |")
    echo("|---|---|---|---|")
    for row in timings:
        echo(row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--families", default=",".join(TASKS), help="comma-separated names")
    parser.add_argument("--seeds", default="0,1,2", help="comma-separated run seeds")
    parser.add_argument("--multipliers", default="0.25,0.5,1,2,4,8,16", help="beta multipliers")
    parser.add_argument("--max-steps", type=int, default=None, help="override max_steps")
    parser.add_argument("--cache-dir", type=Path, default=None, help="reference cache")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cache_dir = args.cache_dir or Path(tempfile.gettempdir()) / "lossforge-tinylm-bench"
    config = TinyLMConfig()
    if args.max_steps is not None:
        config = TinyLMConfig(max_steps=args.max_steps)
    families = [f for f in args.families.split(",") if f]
    unknown = sorted(set(families) - set(TASKS))
    if unknown:
        parser.error(f"unknown families {unknown}; choose from {sorted(TASKS)}")
    run(
        families,
        [int(s) for s in args.seeds.split(",")],
        [float(m) for m in args.multipliers.split(",")],
        config,
        cache_dir,
    )


if __name__ == "__main__":
    main()
