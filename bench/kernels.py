"""Where training time goes: seconds in matrix products and attention kernels, and this core's
matrix-product rate; shared by bench/population.py and bench/evaluator.py.

A step cannot run faster than its matrix products take, so their measured time bounds any
speed-up that keeps the arithmetic (fp32, the same model and batch) unchanged.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import torch

# Leaf kernels of matrix products, and a marker of attention's (SDPA's CPU kernels, both passes).
MATMUL_OPS = frozenset({"aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"})
ATTENTION_MARK = "scaled_dot_product"


def sgemm_gflops(repeats: int = 10) -> float:
    """This core's fp32 matrix-product rate at the current thread count: a 1024^3 product."""
    a, b = torch.randn(1024, 1024), torch.randn(1024, 1024)
    a @ b  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * 1024**3 * repeats / (time.perf_counter() - start) / 1e9


def kernel_seconds(run: Callable[[], object]) -> dict[str, float]:
    """Seconds spent in matrix products (and their FLOPs) and in attention while `run` runs.

    Self times of the leaf kernels on the calling thread, which include their intra-op threads.
    """
    from torch.profiler import ProfilerActivity, profile  # noqa: PLC0415

    with profile(activities=[ProfilerActivity.CPU], with_flops=True) as prof:
        run()
    out = {"matmul_s": 0.0, "matmul_flops": 0.0, "attention_s": 0.0}
    for event in prof.key_averages():
        if event.key in MATMUL_OPS:
            out["matmul_s"] += event.self_cpu_time_total / 1e6  # the profiler counts in us
            out["matmul_flops"] += event.flops
        elif ATTENTION_MARK in event.key:
            out["attention_s"] += event.self_cpu_time_total / 1e6
    return out
