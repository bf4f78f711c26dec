"""Campaign benchmark: candidates evaluated per hour; wall time outside sandbox and training.

    .venv/bin/python bench/campaign.py [--spec examples/quickstart.yaml] [--workers 2]
        [--candidates N] [--wall-time S] [--out FILE]

Runs the spec as a fresh campaign (temporary SQLite archive, local Ray with --workers CPUs), then
reads the archive:
- candidates per hour: proposed candidates that finished the first stage, per hour of wall time;
- time outside: 1 - (sandbox time + training time / workers) / wall time, where sandbox time is
  the sum of verdict timings and training time the sum of evaluation run times. It is the share of
  the run in which the workers were not kept busy (proposing, storing, scheduling, waiting).
  Target: <= 5%.
The time outside is broken down from the evaluations' timestamps (a run started `seconds` before
it was stored): start-up (before the first run started), idle worker time while runs were going
(a gap, or fewer runs than workers, e.g. the tail when the last long runs finish alone), and the
wind-down after the last run. It also reports the best discovered loss (leaderboard order) and its
score vs DPO on the held-out tasks. --candidates and --wall-time replace the spec's budget (`make
bench` runs a smaller quickstart so that the whole suite fits in 10 minutes on 2 cores). Prints a
table and, last, one JSON line.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from datetime import UTC, datetime  # noqa: E402

from discovery.archive import CandidateStatus, EvaluationRecord, open_archive  # noqa: E402
from discovery.runner import (  # noqa: E402
    RunnerConfig,
    create_campaign,
    run_campaign,
)
from discovery.service.leaderboard import campaign_leaderboard  # noqa: E402
from discovery.spec import load_spec  # noqa: E402


def _breakdown(
    evaluations: list[EvaluationRecord], started_at: datetime, ended_at: datetime, workers: int
) -> dict[str, float]:
    """Start-up seconds, worker-seconds idle (divided by `workers`) between the first run's start
    and the last run's end, and seconds after the last run's end."""
    # A run trained in a population of K has a K-th share of its batch's time as `seconds`.
    spans = sorted(
        (
            e.finished_at.timestamp()
            - e.timings.get("seconds", 0.0) * e.timings.get("population", 1.0),
            e.finished_at.timestamp(),
        )
        for e in evaluations
        if e.finished_at is not None
    )
    if not spans:
        return {}
    first, last = spans[0][0], max(end for _, end in spans)
    # Sweep the run intervals: idle worker-time is (workers - running) while below `workers`.
    points = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    idle, running, at = 0.0, 0, first
    for t, step in points:
        idle += max(0, workers - running) * (t - at)
        running, at = running + step, t
    return {
        "startup_s": round(first - started_at.timestamp(), 1),
        "idle_while_running_s": round(idle / workers, 1),
        "wind_down_s": round(ended_at.timestamp() - last, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=_HERE.parent / "examples" / "quickstart.yaml")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--candidates", type=int, help="replace the spec's candidate budget")
    parser.add_argument("--wall-time", type=float, help="replace the spec's wall-time budget (s)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    spec = load_spec(args.spec)
    budget = {
        key: value
        for key, value in (("candidates", args.candidates), ("wall_time_s", args.wall_time))
        if value is not None
    }
    if budget:
        spec = spec.model_copy(update={"budget": spec.budget.model_copy(update=budget)})

    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        archive = open_archive(url)
        campaign_id = create_campaign(archive, spec)
        started_at = datetime.now(UTC)
        started = time.perf_counter()
        status = run_campaign(
            RunnerConfig(
                database_url=url, cache_dir=Path(tmp) / "cache", local_num_cpus=args.workers
            ),
            campaign_id,
        )
        wall = time.perf_counter() - started
        ended_at = datetime.now(UTC)
        candidates = archive.list_candidates(campaign_id=campaign_id)
        evaluations = archive.list_evaluations(campaign_id=campaign_id)
        first_stage = spec.stages[0].name
        evaluated = {
            e.candidate_id for e in evaluations if e.stage == first_stage and e.score is not None
        }
        proposed = [c for c in candidates if c.origin != "baseline"]
        sandbox_s = (
            sum((c.verdict or {}).get("timings_ms", {}).get("total", 0.0) for c in candidates)
            / 1000
        )
        training_s = sum(e.timings.get("seconds", 0.0) for e in evaluations)
        numbers = {
            "status": str(status),
            "workers": args.workers,
            "budget_candidates": spec.budget.candidates,
            "budget_wall_time_s": spec.budget.wall_time_s,
            "wall_s": round(wall, 1),
            "proposed": len(proposed),
            "duplicates": sum(c.status is CandidateStatus.DUPLICATE for c in proposed),
            "rejected": sum(c.status is CandidateStatus.REJECTED for c in proposed),
            "evaluated_first_stage": len(evaluated & {c.id for c in proposed}),
            "candidates_per_hour": round(
                len(evaluated & {c.id for c in proposed}) / wall * 3600, 1
            ),
            "sandbox_s": round(sandbox_s, 1),
            "training_s": round(training_s, 1),
            "fraction_outside": round(1 - (sandbox_s + training_s / args.workers) / wall, 3),
            **_breakdown(evaluations, started_at, ended_at, args.workers),
        }
        # The best discovered loss (not a baseline) by the leaderboard's order, and its score on
        # the held-out tasks, which selection never saw.
        best = next(
            (
                r
                for r in campaign_leaderboard(archive, campaign_id)
                if r.origin != "baseline" and r.score is not None
            ),
            None,
        )
        if best is not None:
            numbers.update(
                best_name=best.name,
                best_stage=best.stage,
                best_score=best.score,
                best_held_out_score=best.held_out_score,
            )
        archive.engine.dispose()
    for key, value in numbers.items():
        print(f"{key:<24} {value}")
    line = json.dumps(numbers)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
