"""Benchmark the sandbox: cold start, warm latency per candidate, and throughput.

    .venv/bin/python bench/sandbox.py [--candidates 60] [--threads 2] [--out results.json]

Candidates are the baseline losses of evaluator/baselines.py, cycled; every one runs through all
five layers and is accepted (the slowest path; static rejections take well under a millisecond).
Prints one line per measurement and, last, the numbers as one JSON line (also written to --out).
Targets on 2 cores: warm p50 <= 250 ms, p95 <= 1 s, >= 100 candidates per minute.
"""

from __future__ import annotations

import sys
from pathlib import Path

# This file is bench/sandbox.py: drop bench/ from the path so `import sandbox` is the package.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ThreadPoolExecutor  # noqa: E402

from evaluator.baselines import BASELINES  # noqa: E402
from sandbox import Candidate, Sandbox, SandboxConfig  # noqa: E402


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--candidates", type=int, default=60, help="candidates per measurement")
    parser.add_argument("--threads", type=int, default=2, help="concurrent validations")
    parser.add_argument("--out", type=Path, help="also write the JSON numbers here")
    args = parser.parse_args()

    candidates = [Candidate(name, "", b.source) for name, b in sorted(BASELINES.items())]
    batch = [candidates[i % len(candidates)] for i in range(args.candidates)]
    sandbox = Sandbox(SandboxConfig(pool_size=max(2, args.threads)))

    begin = time.perf_counter()
    sandbox.start()
    cold_start_s = time.perf_counter() - begin
    print(f"cold start: {cold_start_s:.2f} s (pool warm: {sandbox.pool.cold_start_s:.2f} s)")

    try:
        for candidate in candidates[:3]:  # settle caches before timing
            sandbox.validate(candidate)
        latencies, rejected = [], 0
        for candidate in batch:
            start = time.perf_counter()
            verdict = sandbox.validate(candidate)
            latencies.append(1e3 * (time.perf_counter() - start))
            rejected += not verdict.accepted
            time.sleep(0.05)  # one candidate at a time, as a proposer loop would send them
        p50, p95 = statistics.median(latencies), _percentile(latencies, 0.95)
        print(
            f"warm latency per candidate: p50 {p50:.0f} ms, p95 {p95:.0f} ms "
            f"({len(latencies)} sequential candidates, {rejected} rejected)"
        )

        start = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.threads) as executor:
            verdicts = list(executor.map(sandbox.validate, batch))
        elapsed = time.perf_counter() - start
        per_minute = 60.0 * len(verdicts) / elapsed
        print(
            f"throughput: {per_minute:.0f} candidates/min ({len(verdicts)} candidates, "
            f"{args.threads} threads, {os.cpu_count()} cores, {elapsed:.1f} s)"
        )
    finally:
        sandbox.close()

    numbers = {
        "cold_start_s": round(cold_start_s, 3),
        "warm_p50_ms": round(p50, 1),
        "warm_p95_ms": round(p95, 1),
        "candidates_per_minute": round(per_minute, 1),
        "candidates": args.candidates,
        "threads": args.threads,
        "cpu_count": os.cpu_count(),
        "targets_met": p50 <= 250 and p95 <= 1000 and per_minute >= 100,
    }
    if args.out is not None:
        args.out.write_text(json.dumps(numbers, indent=2) + "\n")
    print(json.dumps(numbers))


if __name__ == "__main__":
    main()
