"""Evaluator benchmark: bandit seconds per candidate; tinylm lean loop vs TRL's DPOTrainer.

    .venv/bin/python bench/evaluator.py [--seeds 3] [--out bench/evaluator.json]

- bandit: wall seconds of `run_bandit` for the DPO graph rebuilt by the sandbox, per family and
  per candidate-seed (all four families), on one torch thread as a Ray worker runs it.
  Target: under 2 s per candidate on one core.
- tinylm: runs bench/evaluator_tinylm.py (lean loop and TRL side by side on the same model and
  batch) at 1 and at 2 torch threads, and reports its steps/s and ratios. Target: lean >= 10x TRL.

Prints a table and, last, one JSON line with every number (also written to --out).
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import time  # noqa: E402

import torch  # noqa: E402

from evaluator.bandit import FAMILIES, BanditConfig, run_bandit  # noqa: E402
from evaluator.baselines import BASELINES  # noqa: E402
from evaluator.jobs import load_loss  # noqa: E402
from sandbox import Candidate, Sandbox, SandboxConfig  # noqa: E402


def bench_bandit(seeds: int) -> dict[str, float]:
    with Sandbox(SandboxConfig(pool_size=1)) as sandbox:
        verdict = sandbox.validate(Candidate(name="dpo", thought="", code=BASELINES["dpo"].source))
    loss = load_loss("dpo", verdict.graph_json or "")
    torch.set_num_threads(1)
    config = BanditConfig()
    run_bandit(loss, task="tabular", seed=99, config=config)  # warm-up (vmap tracing, allocator)
    per_family: dict[str, list[float]] = {name: [] for name in FAMILIES}
    per_candidate: list[float] = []
    for seed in range(seeds):
        total = 0.0
        for family in FAMILIES:
            started = time.perf_counter()
            run_bandit(loss, task=family, seed=seed, config=config)
            elapsed = time.perf_counter() - started
            per_family[family].append(elapsed)
            total += elapsed
        per_candidate.append(total)
    out = {f"bandit/{k}_s": statistics.median(v) for k, v in per_family.items()}
    out["bandit/candidate_seed_s"] = statistics.median(per_candidate)
    return out


def bench_tinylm(threads: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, str(_HERE / "evaluator_tinylm.py"), "--threads", str(threads)],
        capture_output=True,
        text=True,
        check=True,
    )
    numbers = json.loads(result.stdout.strip().splitlines()[-1])
    return {
        f"tinylm/threads={threads}/{k}": v for k, v in numbers.items() if isinstance(v, int | float)
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    numbers = bench_bandit(args.seeds)
    for threads in (1, 2):
        numbers.update(bench_tinylm(threads))
    width = max(len(k) for k in numbers)
    for key, value in numbers.items():
        print(f"{key:<{width}}  {value:10.3f}")
    line = json.dumps(numbers, sort_keys=True)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
