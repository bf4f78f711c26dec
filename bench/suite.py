"""The benchmark suite behind `make bench`: every benchmark, one JSON file, one markdown table.

    .venv/bin/python bench/suite.py [--out bench/results.json] [--cache-dir DIR]

Runs, each as its own process with its own JSON output (a crash in one is recorded, the others
still run):

1. bench/sandbox.py      warm validation latency and throughput (30 candidates)
2. bench/evaluator.py    seconds per candidate, bandit and tinylm stages, sequential vs population
3. bench/population.py   tinylm training: TRL vs lean loop vs population at K = 1, 4, 16, 64
                         (one torch thread, as a Ray worker runs), then K = 16 on two threads
4. bench/campaign.py     the quickstart campaign (examples/quickstart.yaml): candidates per hour
                         and the share of wall time outside sandbox and training
5. bench/api.py          leaderboard latency, 10,000 candidates, 50 concurrent clients, on
                         SQLite and PostgreSQL

and writes every number, the machine, the date and the suite's wall time to --out, then prints
the markdown table (the one in README's performance section). Numbers are ratios measured side by
side where they compare two things: on shared cores absolute rates move with the neighbours'
load, which the table records (load average at the start).
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

_HERE = Path(__file__).resolve().parent

STEPS: list[tuple[str, list[str]]] = [
    ("sandbox", ["sandbox.py", "--candidates", "30"]),
    ("evaluator", ["evaluator.py", "--k", "8", "--repeats", "2", "--stages", "bandit,tinylm"]),
    ("population", ["population.py", "--k", "1,4,16,64", "--threads", "1", "--trl"]),
    (
        "population_2_threads",
        ["population.py", "--k", "16", "--threads", "2", "--steps", "8", "--repeats", "2"],
    ),
    # The quickstart takes about 8 minutes since its tinylm stage confirms on fresh seeds against
    # DPO's beta grid: capped here so that the whole suite stays within 10 minutes.
    ("campaign", ["campaign.py", "--workers", "2", "--wall-time", "240"]),
    ("api", ["api.py"]),
]
CACHED = {"evaluator", "population", "population_2_threads"}  # take --cache-dir


def machine() -> dict[str, object]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal")
    )
    import torch  # noqa: PLC0415 - only for its version and thread count

    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "load_average_at_start": os.getloadavg(),
    }


def run_step(name: str, argv: list[str], out_dir: Path, cache_dir: Path) -> dict:
    out = out_dir / f"{name}.json"
    command = [sys.executable, str(_HERE / argv[0]), *argv[1:], "--out", str(out)]
    if name in CACHED:
        command += ["--cache-dir", str(cache_dir)]
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    start = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True)
    seconds = round(time.perf_counter() - start, 1)
    print(proc.stdout[-3000:], flush=True)
    if proc.returncode != 0 or not out.exists():
        print(proc.stderr[-3000:], file=sys.stderr)
        return {
            "error": f"exit {proc.returncode}: {proc.stderr.strip()[-500:]}",
            "seconds": seconds,
        }
    return {**json.loads(out.read_text()), "seconds": seconds}


def _f(value: object, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if isinstance(value, int | float) else "-"


def table(results: dict) -> str:
    """The markdown table of the headline numbers."""
    sb = results.get("sandbox", {})
    ev = results.get("evaluator", {})
    pop = results.get("population", {})
    pop2 = results.get("population_2_threads", {})
    camp = results.get("campaign", {})
    lines = [
        "| Benchmark | Measure | Value |",
        "|---|---|---|",
        f"| sandbox | warm latency per candidate, p50 / p95 | {_f(sb.get('warm_p50_ms'), 0)} / "
        f"{_f(sb.get('warm_p95_ms'), 0)} ms |",
        f"| sandbox | throughput, {sb.get('threads', '-')} threads | "
        f"{_f(sb.get('candidates_per_minute'), 0)} candidates/min |",
        f"| bandit stage | s per candidate (4 families, 1 seed): sequential / population "
        f"K={ev.get('bandit/k', '-')} | {_f(ev.get('bandit/sequential_s_per_candidate'), 2)} / "
        f"{_f(ev.get('bandit/population_s_per_candidate'), 2)} s "
        f"({_f(ev.get('bandit/population_speedup'), 2)}x) |",
        f"| tinylm stage | s per candidate (sorting, 1 seed, 128 steps, pairs + training + "
        f"evaluation): sequential / population K={ev.get('tinylm/k', '-')} | "
        f"{_f(ev.get('tinylm/sequential_s_per_candidate'), 2)} / "
        f"{_f(ev.get('tinylm/population_s_per_candidate'), 2)} s "
        f"({_f(ev.get('tinylm/population_speedup'), 2)}x) |",
    ]
    if "trl_steps_per_s" in pop:
        lines.append(
            f"| tinylm training, 1 thread | TRL DPOTrainer (fp32, aligned) / lean loop | "
            f"{_f(pop['trl_steps_per_s'])} / {_f(pop['results'][0]['sequential_cand_steps_per_s'])}"
            f" steps/s (lean {_f(pop.get('lean_vs_trl'), 2)}x TRL) |"
        )
    for name, data in (("1 thread", pop), ("2 threads", pop2)):
        for row in data.get("results", []):
            lines.append(
                f"| tinylm training, {name} | population K={row['k']} vs K sequential lean runs: "
                f"candidate-steps/s (peak memory) | {_f(row['population_cand_steps_per_s'])} vs "
                f"{_f(row['sequential_cand_steps_per_s'])} (**{_f(row['ratio'], 2)}x**, "
                f"{_f(row.get('ratio_cpu_time'), 2)}x in CPU time; "
                f"{_f(row['population_peak_mem_mb'], 0)} MB vs "
                f"{_f(row['sequential_peak_mem_mb'], 0)} MB) |"
            )
    for name, data in (("1 thread", pop), ("2 threads", pop2)):
        split = data.get("breakdown")
        if not split:
            continue
        parts = []
        for side in ("sequential", "population"):
            s = split[side]
            parts.append(
                f"{side} {_f(s['ms'], 2)} = {_f(s['matmul_ms'], 2)} ({_f(s['matmul_gflops'], 0)} "
                f"GFLOPS) + {_f(s['attention_ms'], 2)} + {_f(s['rest_ms'], 2)}"
            )
        lines.append(
            f"| tinylm training, {name} | ms per candidate-step at K={split['k']}: total = matrix "
            f"products (their rate; 1024^3 fp32: {_f(split['sgemm_gflops'], 0)} GFLOPS) + "
            f"attention + rest | {'; '.join(parts)}; population ratio bound "
            f"{_f(split['ratio_bound_matmul_only'], 2)}x |"
        )
    if "lean_vs_trl_bound_matmul_only" in pop:
        lines.append(
            "| tinylm training, 1 thread | lean over TRL if a lean step cost only its matrix "
            f"products | {_f(pop['lean_vs_trl_bound_matmul_only'], 1)}x |"
        )
    lines += [
        f"| campaign (quickstart, {camp.get('budget_candidates', '-')} candidates, "
        f"{camp.get('workers', 2)} workers) | candidates per hour | "
        f"{_f(camp.get('candidates_per_hour'), 0)} |",
        f"| campaign | share of wall time outside sandbox and training (start-up / idle "
        f"workers / wind-down) | "
        f"{_f(100 * camp['fraction_outside'] if 'fraction_outside' in camp else None, 1)}% "
        f"({_f(camp.get('startup_s'), 1)} / {_f(camp.get('idle_while_running_s'), 1)} / "
        f"{_f(camp.get('wind_down_s'), 1)} s of {_f(camp.get('wall_s'), 0)} s) |",
    ]
    api = results.get("api", {})
    for backend, r in api.get("results", {}).items():
        lines.append(
            f"| API leaderboard, {backend} ({api.get('candidates', '-')} candidates, "
            f"{api.get('clients', '-')} concurrent clients) | p50 / p99 (first request, "
            f"computing it) | {_f(r['p50_ms'], 1)} / {_f(r['p99_ms'], 1)} ms "
            f"({_f(r['cold_ms'], 0)} ms), {_f(r['requests_per_s'], 0)} requests/s |"
        )
    lines.append(f"| suite | `make bench` wall time | {_f(results.get('wall_s'), 0)} s |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=_HERE / "results.json")
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=_HERE.parent / ".lossforge" / "bench-cache",
        help="tinylm reference cache, kept between runs (trained on the first)",
    )
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)
    out_dir = args.out.parent / "results.d"
    out_dir.mkdir(parents=True, exist_ok=True)

    started = time.perf_counter()
    results: dict = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
    }
    for name, argv in STEPS:
        results[name] = run_step(name, argv, out_dir, args.cache_dir)
    results["wall_s"] = round(time.perf_counter() - started, 1)
    results["table"] = table(results)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    m = results["machine"]
    print(
        f"\n{results['date']}, {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, "
        f"torch {m['torch']}, load average at start {m['load_average_at_start']}\n"
    )
    print(results["table"])
    failed = [name for name, _ in STEPS if "error" in results[name]]
    if failed:
        sys.exit(f"benchmarks failed: {failed}")


if __name__ == "__main__":
    main()
