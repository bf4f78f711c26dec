"""Population benchmark: tinylm candidate-steps per second, sequential lean runs vs the population.

    .venv/bin/python bench/population.py [--device cpu|cuda] [--k 1,4,16,64] [--steps 16]
        [--repeats 3] [--threads 1] [--task sorting] [--cache-dir DIR] [--trl] [--out FILE]

For each K, K candidate losses (eight contract losses defined below, cycled) train copies of the
task's reference on the same batch of preference pairs (the stage's batch size), --steps steps
each, two ways, alternated --repeats times (medians reported):

- sequential: the lean loop (`trainer.train`), one candidate after another. Its rate does not
  depend on K, so it runs min(K, --max-sequential) candidates per repeat;
- population: `population.train_population`, all K at once.

Reported per K: candidate-steps per second of each and their ratio (also in process CPU time,
which time spent waiting for a shared core does not inflate), peak memory above what the
process held before the run (CPU: resident set sampled every 5 ms, after handing freed heap
pages back to the OS; CUDA: torch's peak allocation), the mean GPU
utilization during each timed loop (CUDA only: NVML through nvidia-ml-py, else nvidia-smi), and
the largest relative difference between a candidate's per-step losses in the two runs (smooth
losses only: hinge and robust are kinked, see tests/evaluator/tinylm/test_population.py).
On CPU, for the K = 16 row (or the largest K below it), a profiled run of each side says where a
candidate-step's time goes: matrix products (their FLOPs and achieved GFLOPS, next to this
core's rate on a 1024^3 fp32 product at the same thread count), attention kernels, and the rest
(norms, activations, the optimizer, Python). From it, the largest ratio the population could
reach if everything but its matrix products cost nothing, and if those ran at the 1024^3 rate.
With --trl (CPU; needs trl), TRL's DPOTrainer (fp32, aligned with the lean loop) runs DPO on the
same batch in the same alternation, for one candidate.

The reference is loaded from --cache-dir or trained there first (about 10 s on one CPU core; the
script prints how long). This file imports no trl (unless --trl), ray or sqlalchemy; it needs
pydantic, which the tinylm stage's configs are built with (evaluator.stage_configs), and runs
with transformers 5.17 as well as 5.25. Prints a table and, last, one JSON line (also written to
--out).
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
import copy  # noqa: E402
import ctypes  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Callable, Iterator  # noqa: E402
from contextlib import contextmanager, suppress  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402

from bench.kernels import kernel_seconds, sgemm_gflops  # noqa: E402
from evaluator.losses import Loss  # noqa: E402
from evaluator.results import RunStatus  # noqa: E402
from evaluator.tinylm.pairs import PairSet, build_pairs  # noqa: E402
from evaluator.tinylm.population import train_population  # noqa: E402
from evaluator.tinylm.reference import Reference, load_reference  # noqa: E402
from evaluator.tinylm.stage import TASKS, TinyLMConfig  # noqa: E402
from evaluator.tinylm.trainer import RefLogps, reference_logps, train  # noqa: E402

# -- the candidates: eight contract losses (DESIGN.md section 8), written out here -----------------


def _margin(pc, pr, rc, rr):  # Δ = (π_c - ref_c) - (π_r - ref_r), (B,)
    return (pc - rc) - (pr - rr)


def dpo(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    z = beta * _margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    return -F.logsigmoid(z)


def ipo(
    policy_chosen_logps,
    policy_rejected_logps,
    ref_chosen_logps,
    ref_rejected_logps,
    beta,
    chosen_lengths,
    rejected_lengths,
):
    s_c = (policy_chosen_logps - ref_chosen_logps) / chosen_lengths
    s_r = (policy_rejected_logps - ref_rejected_logps) / rejected_lengths
    return (s_c - s_r - 1 / (2 * beta)) ** 2


def hinge(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    z = beta * _margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    return torch.relu(1 - z)


def robust(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    z = beta * _margin(
        policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps
    )
    return (-0.9 * F.logsigmoid(z) + 0.1 * F.logsigmoid(-z)) / 0.8


def bco_pair(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
):
    s_c, s_r = policy_chosen_logps - ref_chosen_logps, policy_rejected_logps - ref_rejected_logps
    return -F.logsigmoid(beta * s_c) - F.logsigmoid(-beta * s_r)


def nca_pair(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
):
    s_c, s_r = policy_chosen_logps - ref_chosen_logps, policy_rejected_logps - ref_rejected_logps
    return (
        -F.logsigmoid(beta * s_c)
        - 0.5 * F.logsigmoid(-beta * s_c)
        - 0.5 * F.logsigmoid(-beta * s_r)
    )


def sppo_hard(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
):
    s_c, s_r = policy_chosen_logps - ref_chosen_logps, policy_rejected_logps - ref_rejected_logps
    return (s_c - 1 / (2 * beta)) ** 2 + (s_r + 1 / (2 * beta)) ** 2


def apo_zero(
    policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta
):
    s_c, s_r = policy_chosen_logps - ref_chosen_logps, policy_rejected_logps - ref_rejected_logps
    return (1 - torch.sigmoid(beta * s_c)) + torch.sigmoid(beta * s_r)


LENGTHS = frozenset({"chosen_lengths", "rejected_lengths"})
CANDIDATES = [
    Loss("dpo", dpo),
    Loss("ipo", ipo, LENGTHS),
    Loss("hinge", hinge),
    Loss("bco_pair", bco_pair),
    Loss("sppo_hard", sppo_hard),
    Loss("robust", robust),
    Loss("nca_pair", nca_pair),
    Loss("apo_zero", apo_zero),
]
KINKED = {"hinge", "robust"}  # per-step agreement is not defined to 1e-4 for these


# -- measurement helpers ------------------------------------------------------------------------


class _Sampler:
    """Samples a value every `period_s` in a background thread; keeps max and mean."""

    def __init__(self, read: Callable[[], float], period_s: float) -> None:
        self.read, self.period_s = read, period_s
        self.values: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.values.append(self.read())
            self._stop.wait(self.period_s)

    def __enter__(self) -> _Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.values.append(self.read())


def _rss_bytes() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _release_free_memory() -> None:
    """Hand freed heap pages back to the OS (glibc), so the resident set before a run is what
    that run starts from rather than the high-water mark of the previous one."""
    with suppress(OSError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _gpu_reader(device: torch.device) -> Callable[[], float] | None:
    """Utilization (%) of the device, from NVML or nvidia-smi; None if neither works."""
    index = device.index if device.index is not None else torch.cuda.current_device()
    try:
        import pynvml  # noqa: PLC0415 - nvidia-ml-py, only on GPU machines

        pynvml.nvmlInit()
        handle = pynvml.nvmlDeviceGetHandleByIndex(index)
        return lambda: float(pynvml.nvmlDeviceGetUtilizationRates(handle).gpu)
    except Exception:
        pass
    query = ["nvidia-smi", f"--id={index}", "--query-gpu=utilization.gpu", "--format=csv,noheader"]
    try:
        subprocess.run(query, capture_output=True, check=True, timeout=10)
    except Exception:
        return None
    return lambda: float(
        subprocess.run(query, capture_output=True, text=True, timeout=10).stdout.split()[0]
    )


@contextmanager
def measured(device: torch.device, gpu: Callable[[], float] | None) -> Iterator[dict[str, float]]:
    """Times the block; records peak memory above the start and mean GPU utilization."""
    out: dict[str, float] = {}
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    else:
        gc.collect()
        _release_free_memory()
        base = _rss_bytes()
    memory = _Sampler(_rss_bytes, 0.005) if device.type == "cpu" else None
    util = _Sampler(gpu, 0.05) if gpu is not None else None
    if memory:
        memory.__enter__()
    if util:
        util.__enter__()
    start, cpu_start = time.perf_counter(), time.process_time()
    try:
        yield out
    finally:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        out["seconds"] = time.perf_counter() - start
        out["cpu_seconds"] = time.process_time() - cpu_start
        if util:
            util.__exit__()
            out["gpu_util_pct"] = statistics.fmean(util.values)
        if memory:
            memory.__exit__()
            out["peak_mem_mb"] = (max(memory.values) - base) / 2**20  # resident set
            out["base_mem_mb"] = base / 2**20
        else:
            out["peak_mem_mb"] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
            out["base_mem_mb"] = base / 2**20


# -- the two ways to train K candidates --------------------------------------------------------


def run_sequential(
    model: torch.nn.Module, pairs: PairSet, ref: RefLogps, losses: list[Loss], settings: dict
) -> list[list[float]]:
    """Per-step losses of each candidate, trained one after another with the lean loop."""
    out = []
    for loss in losses:
        policy = copy.deepcopy(model).requires_grad_(True)
        outcome = train(
            policy, pairs, ref, loss, generator=torch.Generator().manual_seed(0), **settings
        )
        if outcome.status is not RunStatus.DONE:
            raise RuntimeError(f"{loss.name}: {outcome.reason}")
        out.append(outcome.losses)
    return out


def run_population(
    model: torch.nn.Module, pairs: PairSet, ref: RefLogps, losses: list[Loss], settings: dict
) -> list[list[float]]:
    run = train_population(
        model, pairs, ref, losses, generator=torch.Generator().manual_seed(0), **settings
    )
    bad = [o.reason for o in run.outcomes if o.status is not RunStatus.DONE]
    if bad:
        raise RuntimeError(f"population run failed: {bad[:3]}")
    return [o.losses for o in run.outcomes]


def max_rel_difference(
    losses: list[Loss], sequential: list[list[float]], population: list[list[float]]
) -> float:
    worst = 0.0
    for loss, a, b in zip(losses, sequential, population, strict=False):
        if loss.name in KINKED:
            continue
        x, y = np.asarray(a), np.asarray(b)
        worst = max(worst, float(np.max(np.abs(x - y) / np.abs(x))))
    return worst


def breakdown(
    row: dict, model: torch.nn.Module, pairs: PairSet, ref: RefLogps, settings: dict
) -> dict:
    """Milliseconds per candidate-step of each side (unprofiled, from `row`'s rates), split into
    matrix products, attention and the rest by a profiled run; and the ratio's upper bounds."""
    k, steps = row["k"], settings["max_steps"]
    losses = [CANDIDATES[i % len(CANDIDATES)] for i in range(k)]
    sides = {
        "sequential": (
            kernel_seconds(lambda: run_sequential(model, pairs, ref, losses[:2], settings)),
            2 * steps,
            row["sequential_cand_steps_per_s"],
        ),
        "population": (
            kernel_seconds(lambda: run_population(model, pairs, ref, losses, settings)),
            k * steps,
            row["population_cand_steps_per_s"],
        ),
    }
    out: dict = {"k": k, "sgemm_gflops": sgemm_gflops()}
    for side, (kernels, cand_steps, rate) in sides.items():
        ms = 1e3 / rate
        matmul_ms = 1e3 * kernels["matmul_s"] / cand_steps
        attention_ms = 1e3 * kernels["attention_s"] / cand_steps
        out[side] = {
            "ms": ms,
            "matmul_ms": matmul_ms,
            "matmul_gflop": kernels["matmul_flops"] / cand_steps / 1e9,
            "matmul_gflops": kernels["matmul_flops"] / max(kernels["matmul_s"], 1e-9) / 1e9,
            "attention_ms": attention_ms,
            "rest_ms": ms - matmul_ms - attention_ms,
        }
    seq, pop = out["sequential"], out["population"]
    out["ratio_bound_matmul_only"] = seq["ms"] / pop["matmul_ms"]
    out["ratio_bound_matmul_at_sgemm_rate"] = seq["ms"] / (
        1e3 * pop["matmul_gflop"] / out["sgemm_gflops"]
    )
    return out


def _print_breakdown(b: dict) -> None:
    print(
        f"where a candidate-step's time goes at K={b['k']} (this core: {b['sgemm_gflops']:.0f} "
        "GFLOPS on a 1024^3 fp32 product):"
    )
    for side in ("sequential", "population"):
        s = b[side]
        print(
            f"  {side:<10} {s['ms']:6.2f} ms = matrix products {s['matmul_ms']:5.2f} "
            f"({s['matmul_gflop']:.3f} GFLOP at {s['matmul_gflops']:.0f} GFLOPS) + attention "
            f"{s['attention_ms']:5.2f} + rest {s['rest_ms']:5.2f}"
        )
    print(
        f"  ratio bound: {b['ratio_bound_matmul_only']:.2f}x if the population spent only its "
        f"matrix products' time, {b['ratio_bound_matmul_at_sgemm_rate']:.2f}x if they also ran "
        "at the 1024^3 rate"
    )


def trl_rate(ref: Reference, pairs: PairSet, steps: int) -> float:
    """Steady steps per second of TRL's DPOTrainer (aligned with the lean loop) on `pairs`."""
    from transformers import PrinterCallback  # noqa: PLC0415

    from evaluator.tinylm.trl_compare import StepSettings, build_trl_trainer  # noqa: PLC0415

    settings = StepSettings(max_steps=steps)
    with tempfile.TemporaryDirectory() as out:
        trainer = build_trl_trainer(ref.model, ref.tokenizer, pairs, settings, Path(out))
        trainer.remove_callback(PrinterCallback)
        trainer.train()
    stamps = [t for _, t in trainer.recorded]  # one per step
    return (len(stamps) - 1) / (stamps[-1] - stamps[0])


def measure_k(
    k: int,
    model: torch.nn.Module,
    pairs: PairSet,
    ref_logps: RefLogps,
    settings: dict,
    device: torch.device,
    gpu: Callable[[], float] | None,
    args: argparse.Namespace,
    trl_probe: Callable[[], float] | None = None,
) -> tuple[dict, list[float]]:
    """One K, both ways alternated --repeats times (and `trl_probe`, TRL's steps per second,
    in the same alternation): the row of medians, and TRL's rates."""
    losses = [CANDIDATES[i % len(CANDIDATES)] for i in range(k)]
    seq_losses = losses[: min(k, args.max_sequential)]
    seq, pop, trl = [], [], []
    agreement = 0.0
    for _ in range(args.repeats):
        with measured(device, gpu) as p:
            pop_steps = run_population(model, pairs, ref_logps, losses, settings)
        with measured(device, gpu) as s:
            seq_steps = run_sequential(model, pairs, ref_logps, seq_losses, settings)
        p["rate"] = k * args.steps / p["seconds"]
        s["rate"] = len(seq_losses) * args.steps / s["seconds"]
        p["cpu_rate"] = k * args.steps / p["cpu_seconds"]
        s["cpu_rate"] = len(seq_losses) * args.steps / s["cpu_seconds"]
        pop.append(p)
        seq.append(s)
        agreement = max(agreement, max_rel_difference(seq_losses, seq_steps, pop_steps))
        if trl_probe is not None:
            trl.append(trl_probe())
    row = {
        "k": k,
        "population_cand_steps_per_s": statistics.median(r["rate"] for r in pop),
        "sequential_cand_steps_per_s": statistics.median(r["rate"] for r in seq),
        "population_peak_mem_mb": max(r["peak_mem_mb"] for r in pop),
        "sequential_peak_mem_mb": max(r["peak_mem_mb"] for r in seq),
        "base_mem_mb": min(r["base_mem_mb"] for r in pop + seq),
        "max_rel_loss_difference": agreement,
    }
    row["ratio"] = row["population_cand_steps_per_s"] / row["sequential_cand_steps_per_s"]
    # The same ratio in CPU time: on shared cores, time waiting for a core is not counted.
    row["ratio_cpu_time"] = statistics.median(r["cpu_rate"] for r in pop) / statistics.median(
        r["cpu_rate"] for r in seq
    )
    if gpu is not None:
        row["population_gpu_util_pct"] = statistics.median(r["gpu_util_pct"] for r in pop)
        row["sequential_gpu_util_pct"] = statistics.median(r["gpu_util_pct"] for r in seq)
    return row, trl


# -- main ---------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--k", default="1,4,16,64", help="population sizes, comma-separated")
    parser.add_argument("--steps", type=int, default=16, help="optimizer steps per measured run")
    parser.add_argument("--repeats", type=int, default=3, help="alternating runs per side")
    parser.add_argument("--max-sequential", type=int, default=16, help="sequential runs per K")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--task", default="sorting", choices=sorted(TASKS))
    parser.add_argument("--cache-dir", type=Path, help="reference cache (default: a temp dir)")
    parser.add_argument("--trl", action="store_true", help="also time TRL's DPOTrainer (CPU)")
    parser.add_argument("--out", type=Path, help="also write the JSON numbers here")
    args = parser.parse_args()

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    ks = [int(k) for k in args.k.split(",")]
    ref, pairs, ref_logps, settings = _setup(args, device)
    model = ref.model
    gpu = _gpu_reader(device) if device.type == "cuda" else None

    # Warm-up: kernels, allocator, autograd, cuBLAS handles, the TRL import.
    run_sequential(model, pairs, ref_logps, CANDIDATES[:2], {**settings, "max_steps": 3})
    run_population(model, pairs, ref_logps, CANDIDATES[:4], {**settings, "max_steps": 3})
    trl_steps = min(args.steps, 8)
    if args.trl:
        trl_rate(ref, pairs, 3)

    rows, trl_rates = [], []
    for k in ks:
        probe = None
        if args.trl and k == ks[0]:  # TRL trains one candidate: timed beside the first K

            def probe() -> float:
                return trl_rate(ref, pairs, trl_steps)

        row, trl = measure_k(k, model, pairs, ref_logps, settings, device, gpu, args, probe)
        rows.append(row)
        trl_rates.extend(trl)
        _print_row(row)
    split = None
    small = [row for row in rows if row["k"] <= 16]
    if device.type == "cpu" and small:
        split = breakdown(max(small, key=lambda r: r["k"]), model, pairs, ref_logps, settings)
        _print_breakdown(split)
    _report(args, device, ref, rows, trl_rates, split)


def _setup(
    args: argparse.Namespace, device: torch.device
) -> tuple[Reference, PairSet, RefLogps, dict]:
    """The reference (on `device`), one batch of pairs, its reference log-probs, the settings."""
    cache_dir = args.cache_dir or Path(tempfile.mkdtemp(prefix="tinylm-bench-"))
    config = TinyLMConfig()
    ref = load_reference(
        TASKS[args.task], model_config=config.model, sft_config=config.sft, cache_dir=cache_dir
    )
    how = "loaded" if ref.from_cache else "trained"
    print(f"reference for {args.task}: {how} in {ref.seconds:.1f} s ({cache_dir})")
    batch = config.per_device_train_batch_size
    pairs = build_pairs(
        ref,
        n_pairs=batch,
        split="train",
        label_noise=0.0,
        max_length=config.max_length,
        rng=np.random.default_rng(0),
        generator=torch.Generator().manual_seed(0),
    )
    ref.model.to(device)
    ref_logps = reference_logps(ref.model, pairs)  # on the host, as the trainers index it
    settings = {
        "beta": config.beta,
        "learning_rate": config.learning_rate,
        "per_device_train_batch_size": batch,
        "max_steps": args.steps,
        "max_grad_norm": config.max_grad_norm,
    }
    return ref, pairs, ref_logps, settings


def _print_row(row: dict) -> None:
    util = ""
    if "population_gpu_util_pct" in row:
        util = (
            f", GPU {row['population_gpu_util_pct']:.0f}% vs {row['sequential_gpu_util_pct']:.0f}%"
        )
    print(
        f"K={row['k']:4d}: population {row['population_cand_steps_per_s']:9.1f} cand-steps/s, "
        f"sequential {row['sequential_cand_steps_per_s']:8.1f} ({row['ratio']:5.2f}x; "
        f"{row['ratio_cpu_time']:5.2f}x in CPU time), "
        f"peak mem {row['population_peak_mem_mb']:7.1f} MB vs "
        f"{row['sequential_peak_mem_mb']:6.1f} MB, "
        f"max rel loss diff {row['max_rel_loss_difference']:.1e}{util}"
    )


def _report(
    args: argparse.Namespace,
    device: torch.device,
    ref: Reference,
    rows: list[dict],
    trl_rates: list[float],
    split: dict | None,
) -> None:
    """Print the summary and the JSON line; write it to --out."""
    cpu_name = platform.processor() or platform.machine()
    numbers: dict = {
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else cpu_name,
        "torch": torch.__version__,
        "threads": args.threads,
        "task": args.task,
        "batch_size": TinyLMConfig().per_device_train_batch_size,
        "steps": args.steps,
        "repeats": args.repeats,
        "reference_seconds": round(ref.seconds, 1),
        "reference_from_cache": ref.from_cache,
        "results": rows,
    }
    if split:
        numbers["breakdown"] = split
    if trl_rates:
        trl = statistics.median(trl_rates)
        numbers["trl_steps_per_s"] = trl
        numbers["lean_vs_trl"] = rows[0]["sequential_cand_steps_per_s"] / trl
        if split:  # the lean loop cannot step faster than its own matrix products take
            numbers["lean_vs_trl_bound_matmul_only"] = 1e3 / trl / split["sequential"]["matmul_ms"]
            print(
                f"lean loop vs TRL bound: {numbers['lean_vs_trl_bound_matmul_only']:.1f}x if a "
                "lean step spent only its matrix products' time"
            )
        print(
            f"TRL DPOTrainer: {trl:.1f} steps/s; lean loop {numbers['lean_vs_trl']:.1f}x TRL; "
            + ", ".join(
                f"population K={r['k']} {r['population_cand_steps_per_s'] / trl:.1f}x" for r in rows
            )
        )
    line = json.dumps(numbers)
    print(line)
    if args.out:
        args.out.write_text(line + "\n")


if __name__ == "__main__":
    main()
