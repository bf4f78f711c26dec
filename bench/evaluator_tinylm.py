"""Benchmark the tinylm lean loop against TRL's DPOTrainer: steps per second, side by side.

    .venv/bin/python bench/evaluator_tinylm.py [--task sorting] [--batch-size 32] [--steps 64]
        [--repeats 3] [--threads 1] [--cache-dir DIR] [--out results.json]

TRL runs twice: aligned with the lean loop (fp32, no activation checkpointing, as in the agreement
test) and with DPOConfig's own defaults on a CPU (bf16 autocast, activation checkpointing), which
is what a user gets. All train the same tiny model (the task's reference, trained or loaded from
--cache-dir) with DPO on the same batch of preference pairs (evaluator/tinylm/trl_compare.py).
Two measurements, each the median of --repeats alternating runs:

- steady: steps per second of the training loop alone, after warm-up (TRL: between its first
  and last step; lean: the loop, reference log-probs excluded).
- end to end: --steps steps from the same pairs, setup included (lean: the one reference forward
  and the loop; TRL: DPOTrainer construction, which tokenizes the dataset, and train()).

Prints one line per measurement and, last, the numbers as one JSON line (also written to --out).
Target: lean >= 10x TRL on the tiny model.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# This file is bench/evaluator_tinylm.py: make the repository root importable.
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

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from datasets import disable_progress_bars  # noqa: E402
from transformers import PrinterCallback  # noqa: E402

from evaluator.losses import Loss  # noqa: E402
from evaluator.tinylm.pairs import PairSet, build_pairs  # noqa: E402
from evaluator.tinylm.reference import Reference, load_reference  # noqa: E402
from evaluator.tinylm.stage import TASKS, TinyLMConfig  # noqa: E402
from evaluator.tinylm.trl_compare import StepSettings, build_trl_trainer, lean_run  # noqa: E402


def dpo(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    # DPO eq. 7: -log σ(β[(π_c - ref_c) - (π_r - ref_r)]), TRL's "sigmoid" loss.
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(beta * margin)


DPO = Loss("dpo", dpo)


def lean_rates(ref: Reference, pairs: PairSet, settings: StepSettings) -> tuple[float, float]:
    """(steady steps/s, end-to-end steps/s) of one lean run."""
    run = lean_run(ref.model, pairs, DPO, settings)
    return settings.max_steps / run.loop_seconds, settings.max_steps / run.total_seconds


def trl_run(
    ref: Reference, pairs: PairSet, settings: StepSettings, *, trl_defaults: bool = False
) -> tuple[float, float]:
    """(steady steps/s, end-to-end steps/s) of one TRL run."""
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        trainer = build_trl_trainer(
            ref.model, ref.tokenizer, pairs, settings, Path(out), trl_defaults=trl_defaults
        )
        trainer.remove_callback(PrinterCallback)  # it prints the end-of-training summary
        trainer.train()
        end = time.perf_counter()
    stamps = [t for _, t in trainer.recorded]  # one per step, at its loss
    steady = (len(stamps) - 1) / (stamps[-1] - stamps[0])
    return steady, settings.max_steps / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sorting", choices=sorted(TASKS))
    parser.add_argument("--batch-size", type=int, default=32, help="pairs per step (stage default)")
    parser.add_argument("--steps", type=int, default=64, help="steps per measured run")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per side")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (workers use 1)")
    parser.add_argument("--cache-dir", type=Path, help="reference cache (default: a temp dir)")
    parser.add_argument("--out", type=Path, help="also write the JSON numbers here")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    logging.disable(logging.WARNING)  # TRL's and datasets' chatter
    warnings.filterwarnings("ignore", category=FutureWarning)
    disable_progress_bars()
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="tinylm-bench-"))
    config = TinyLMConfig(cache_dir=cache_dir)
    ref = load_reference(
        TASKS[args.task], model_config=config.model, sft_config=config.sft, cache_dir=cache_dir
    )
    n_params = sum(p.numel() for p in ref.model.parameters())
    print(
        f"reference for {args.task}: {n_params} parameters, "
        f"{'loaded' if ref.from_cache else 'trained'} in {ref.seconds:.1f} s"
    )
    pairs = build_pairs(
        ref,
        n_pairs=args.batch_size,
        split="train",
        label_noise=0.0,
        max_length=config.max_length,
        rng=np.random.default_rng(0),
        generator=torch.Generator().manual_seed(0),
    )
    print(
        f"batch: {len(pairs)} pairs, {tuple(pairs.input_ids.shape)} token ids (chosen + rejected)"
    )
    settings = StepSettings(
        beta=config.beta,
        learning_rate=config.learning_rate,
        max_steps=args.steps,
        max_length=config.max_length,
    )

    lean_rates(ref, pairs, StepSettings(max_steps=3))  # warm-up: allocator, autograd, kernels
    trl_run(ref, pairs, StepSettings(max_steps=3))  # warm-up: imports, accelerate, datasets
    trl_run(ref, pairs, StepSettings(max_steps=3), trl_defaults=True)
    lean, trl, trl_shipped = [], [], []
    for _ in range(args.repeats):
        lean.append(lean_rates(ref, pairs, settings))
        trl.append(trl_run(ref, pairs, settings))
        trl_shipped.append(trl_run(ref, pairs, settings, trl_defaults=True))

    numbers: dict[str, float | int | str] = {
        "task": args.task,
        "batch_size": len(pairs),
        "steps": args.steps,
        "threads": args.threads,
    }
    for i, kind in enumerate(("steady", "end_to_end")):
        lean_rate = statistics.median(r[i] for r in lean)
        trl_rate = statistics.median(r[i] for r in trl)
        numbers[f"lean_{kind}_steps_per_s"] = round(lean_rate, 2)
        numbers[f"trl_{kind}_steps_per_s"] = round(trl_rate, 2)
        numbers[f"{kind}_ratio"] = round(lean_rate / trl_rate, 2)
        shipped_rate = statistics.median(r[i] for r in trl_shipped)
        numbers[f"trl_defaults_{kind}_steps_per_s"] = round(shipped_rate, 2)
        numbers[f"{kind}_ratio_vs_trl_defaults"] = round(lean_rate / shipped_rate, 2)
        print(
            f"{kind:>10}: lean {lean_rate:7.1f} steps/s   TRL aligned {trl_rate:7.1f} steps/s "
            f"({lean_rate / trl_rate:4.1f}x)   TRL defaults {shipped_rate:7.1f} steps/s "
            f"({lean_rate / shipped_rate:4.1f}x; target >= 10x)"
        )
    line = json.dumps(numbers)
    print(line)
    if args.out:
        args.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
