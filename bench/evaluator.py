"""Evaluator benchmark: seconds per candidate of each stage, one at a time vs as a population;
the lean tinylm loop vs TRL's DPOTrainer.

    .venv/bin/python bench/evaluator.py [--k 8] [--repeats 2] [--stages bandit,tinylm,trl]
        [--trl-steps 64] [--cache-dir DIR] [--out FILE]

K registry baselines, validated and rebuilt by the sandbox as candidates are, run through each
stage with its default config on one torch thread (as a Ray worker runs them), two ways,
alternated --repeats times (medians reported):

- sequential: `run_bandit` / `run_tinylm` for each candidate, one after another;
- population: `run_bandit_population` / `run_tinylm_population` for all K at once.

bandit: seconds per candidate for one seed of all four families (target: under 2 s on one core).
tinylm: seconds per candidate for one seed of the sorting task, everything a run does included
(train pairs sampled from the reference, reference log-probs, 128 training steps, evaluation),
the reference itself loaded from --cache-dir (trained there first, about 10 s, not timed). A
population makes the pairs, reference log-probs and reference samples once for all K.
trl: the lean loop and TRL's DPOTrainer train the same tiny model (the sorting reference) with DPO
on the same batch of pairs (evaluator/tinylm/trl_compare.py), --trl-steps steps, alternated
--repeats times: steps per second steady (between the first and last step) and end to end (TRL's
trainer construction, which tokenizes the dataset, included; the lean loop's one reference
forward included). A profiled lean run gives the time of its matrix products per step, and with
it the largest steady ratio over TRL any lean loop doing the same fp32 arithmetic could reach.
TRL runs twice: aligned with the lean loop (fp32, no activation checkpointing) and at
DPOConfig's own CPU defaults (bf16 autocast, activation checkpointing).

Prints a table and, last, one JSON line (also written to --out).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here downloads; make sure of it

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.kernels import kernel_seconds  # noqa: E402
from evaluator.bandit import FAMILIES, BanditConfig, run_bandit, run_bandit_population  # noqa: E402
from evaluator.baselines import BASELINES  # noqa: E402
from evaluator.losses import Loss  # noqa: E402
from evaluator.results import RunStatus  # noqa: E402
from evaluator.tinylm import TASKS, TinyLMConfig, run_tinylm, run_tinylm_population  # noqa: E402
from evaluator.tinylm.pairs import PairSet, build_pairs  # noqa: E402
from evaluator.tinylm.reference import Reference, load_reference  # noqa: E402
from evaluator.tinylm.trl_compare import StepSettings, build_trl_trainer, lean_run  # noqa: E402
from evaluator.worker import load_loss  # noqa: E402
from sandbox import Candidate, Sandbox, SandboxConfig  # noqa: E402

# Registry baselines that train cleanly in both stages (no batch-statistic NaNs at small batches).
NAMES = ("dpo", "ipo", "hinge", "bco_pair", "sppo_hard", "nca_pair", "apo_zero", "padll")


def candidates(k: int) -> list[Loss]:
    """K losses: the baselines of NAMES, cycled, as rebuilt graphs."""
    names = [NAMES[i % len(NAMES)] for i in range(k)]
    graphs = {}
    with Sandbox(SandboxConfig(pool_size=1)) as sandbox:
        for name in sorted(set(names)):
            verdict = sandbox.validate(Candidate(name, "", BASELINES[name].source))
            if not verdict.accepted:
                raise RuntimeError(f"{name} was rejected: {verdict.reason}")
            graphs[name] = verdict.graph_json or ""
    return [load_loss(name, graphs[name]) for name in names]


def alternate(
    sequential: Callable[[], list], population: Callable[[], list], repeats: int
) -> tuple[float, float]:
    """(median seconds of `sequential`, of `population`), run alternately; both must succeed."""
    seq, pop = [], []
    for _ in range(repeats):
        for fn, times in ((population, pop), (sequential, seq)):
            start = time.perf_counter()
            results = fn()
            times.append(time.perf_counter() - start)
            failed = [r.reason for r in results if r.status is not RunStatus.DONE]
            if failed:
                raise RuntimeError(f"a benchmark run failed: {failed[:3]}")
    return statistics.median(seq), statistics.median(pop)


def bench_bandit(losses: list[Loss], repeats: int) -> dict[str, float]:
    config = BanditConfig()
    run_bandit(losses[0], task="tabular", seed=99, config=config)  # warm-up (vmap, allocator)

    def sequential() -> list:
        return [
            run_bandit(loss, task=family, seed=0, config=config)
            for family in FAMILIES
            for loss in losses
        ]

    def population() -> list:
        return [
            result
            for family in FAMILIES
            for result in run_bandit_population(losses, task=family, seed=0, config=config)
        ]

    seq, pop = alternate(sequential, population, repeats)
    k = len(losses)
    return {
        "bandit/k": k,
        "bandit/sequential_s_per_candidate": seq / k,
        "bandit/population_s_per_candidate": pop / k,
        "bandit/population_speedup": seq / pop,
    }


def bench_tinylm(losses: list[Loss], repeats: int, cache_dir: Path) -> dict[str, float]:
    config = TinyLMConfig()
    reference = load_reference(
        TASKS["sorting"], model_config=config.model, sft_config=config.sft, cache_dir=cache_dir
    )
    print(
        f"tinylm reference: {'loaded' if reference.from_cache else 'trained'} in "
        f"{reference.seconds:.1f} s"
    )
    short = TinyLMConfig(max_steps=2, num_train_pairs=64)
    run_tinylm(losses[0], task="sorting", seed=99, config=short, cache_dir=cache_dir)  # warm-up

    def sequential() -> list:
        return [
            run_tinylm(loss, task="sorting", seed=0, config=config, cache_dir=cache_dir)
            for loss in losses
        ]

    def population() -> list:
        return run_tinylm_population(
            losses, task="sorting", seed=0, config=config, cache_dir=cache_dir
        )

    seq, pop = alternate(sequential, population, repeats)
    k = len(losses)
    return {
        "tinylm/k": k,
        "tinylm/sequential_s_per_candidate": seq / k,
        "tinylm/population_s_per_candidate": pop / k,
        "tinylm/population_speedup": seq / pop,
    }


def lean_rates(
    ref: Reference, pairs: PairSet, dpo: Loss, settings: StepSettings
) -> tuple[float, float]:
    """(steady steps/s, end-to-end steps/s) of one lean DPO run on `pairs`."""
    run = lean_run(ref.model, pairs, dpo, settings)
    return settings.max_steps / run.loop_seconds, settings.max_steps / run.total_seconds


def trl_rates(
    ref: Reference, pairs: PairSet, settings: StepSettings, *, trl_defaults: bool = False
) -> tuple[float, float]:
    """(steady steps/s, end-to-end steps/s) of one TRL run on `pairs`."""
    from transformers import PrinterCallback  # noqa: PLC0415 - TRL's stack only when asked

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        trainer = build_trl_trainer(
            ref.model, ref.tokenizer, pairs, settings, Path(out), trl_defaults=trl_defaults
        )
        trainer.remove_callback(PrinterCallback)  # it prints the end-of-training summary
        trainer.train()
        end = time.perf_counter()
    stamps = [t for _, t in trainer.recorded]  # one per step, at its loss
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]), settings.max_steps / (end - start)


def bench_trl(dpo: Loss, repeats: int, steps: int, cache_dir: Path) -> dict[str, float]:
    from datasets import disable_progress_bars  # noqa: PLC0415

    disable_progress_bars()
    config = TinyLMConfig()
    ref = load_reference(
        TASKS["sorting"], model_config=config.model, sft_config=config.sft, cache_dir=cache_dir
    )
    pairs = build_pairs(
        ref,
        n_pairs=config.per_device_train_batch_size,
        split="train",
        label_noise=0.0,
        max_length=config.max_length,
        rng=np.random.default_rng(0),
        generator=torch.Generator().manual_seed(0),
    )
    settings = StepSettings(
        beta=config.beta,
        learning_rate=config.learning_rate,
        max_steps=steps,
        max_length=config.max_length,
    )
    warm = StepSettings(max_steps=3)  # allocator, autograd, imports, accelerate, datasets
    lean_rates(ref, pairs, dpo, warm)
    trl_rates(ref, pairs, warm)
    trl_rates(ref, pairs, warm, trl_defaults=True)
    sides: dict[str, list[tuple[float, float]]] = {"lean": [], "trl": [], "trl_defaults": []}
    for _ in range(repeats):
        sides["lean"].append(lean_rates(ref, pairs, dpo, settings))
        sides["trl"].append(trl_rates(ref, pairs, settings))
        sides["trl_defaults"].append(trl_rates(ref, pairs, settings, trl_defaults=True))
    numbers: dict[str, float] = {"trl/steps": steps, "trl/batch_size": len(pairs)}
    for i, kind in enumerate(("steady", "end_to_end")):
        rate = {side: statistics.median(r[i] for r in runs) for side, runs in sides.items()}
        numbers[f"trl/lean_{kind}_steps_per_s"] = rate["lean"]
        numbers[f"trl/trl_{kind}_steps_per_s"] = rate["trl"]
        numbers[f"trl/trl_defaults_{kind}_steps_per_s"] = rate["trl_defaults"]
        numbers[f"trl/lean_over_trl_{kind}"] = rate["lean"] / rate["trl"]
        numbers[f"trl/lean_over_trl_defaults_{kind}"] = rate["lean"] / rate["trl_defaults"]
    # A lean step cannot take less than its matrix products do: that bounds the steady ratio.
    kernels = kernel_seconds(lambda: lean_rates(ref, pairs, dpo, settings))
    lean_matmul_ms = 1e3 * kernels["matmul_s"] / steps
    numbers["trl/lean_matmul_ms_per_step"] = lean_matmul_ms
    numbers["trl/lean_step_ms"] = 1e3 / numbers["trl/lean_steady_steps_per_s"]
    numbers["trl/lean_over_trl_bound_matmul_only"] = (
        1e3 / numbers["trl/trl_steady_steps_per_s"] / lean_matmul_ms
    )
    return numbers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=8, help="candidates per measurement")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs per side")
    parser.add_argument("--stages", default="bandit,tinylm,trl")
    parser.add_argument("--trl-steps", type=int, default=64, help="steps per lean/TRL run")
    parser.add_argument("--cache-dir", type=Path, help="tinylm reference cache (default: temp)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(1)

    losses = candidates(args.k)
    stages = args.stages.split(",")
    numbers: dict[str, float] = {}
    if "bandit" in stages:
        numbers.update(bench_bandit(losses, args.repeats))
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="tinylm-bench-"))
    if "tinylm" in stages:
        numbers.update(bench_tinylm(losses, args.repeats, cache_dir))
    if "trl" in stages:
        numbers.update(bench_trl(losses[0], args.repeats, args.trl_steps, cache_dir))
    width = max(len(k) for k in numbers)
    for key, value in numbers.items():
        print(f"{key:<{width}}  {value:10.3f}")
    line = json.dumps(numbers, sort_keys=True)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
