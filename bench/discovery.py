"""Discovery benchmark: do the campaign's "better than DPO" claims hold up?

    .venv/bin/python bench/discovery.py [--spec examples/quickstart.yaml] [--seeds 0,1,2]
        [--workers 2] [--out FILE]

Runs the spec as a fresh campaign once per campaign seed (temporary SQLite archive, local Ray),
then reads each archive's leaderboard and prints, per seed and pooled over the seeds:
- best confirmed: the best fresh-seed held-out score vs DPO (95% interval, n) of a proposed
  candidate that is `confirmed` (interval above 0), or "none";
- false-elite rate: of the public top 5 (the leaderboard's order: furthest stage, then the lower
  end of the public interval), the share significantly worse than DPO on held-out tasks (fresh
  seeds where the candidate has 2 or more, else selection seeds);
- Spearman(public, held-out) over the candidates that have both scores at the stage with held-out
  tasks, with its 95% interval; pooled: over the candidates of every seed together;
- candidates brought to a verdict per CPU-hour: proposed candidates with a score or a failure
  status at the last stage they reached, per (wall hours x workers);
- wall time.
Prints a markdown table and, last, one JSON line (also written to --out).
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
from typing import Any  # noqa: E402

from discovery.archive import CandidateStatus, open_archive  # noqa: E402
from discovery.runner import (  # noqa: E402
    RunnerConfig,
    create_campaign,
    run_campaign,
)
from discovery.scores import LeaderboardRow, selection_scores, shared  # noqa: E402
from discovery.service.leaderboard import campaign_report, campaign_stages  # noqa: E402
from discovery.spec import load_spec  # noqa: E402
from evaluator.stats import spearman  # noqa: E402

TOP = 5


def _held_out_below(row: LeaderboardRow) -> bool:
    if row.fresh_held_out_seeds >= 2:
        return row.fresh_held_out_high is not None and row.fresh_held_out_high < 0
    return row.held_out_high is not None and row.held_out_high < 0


def _campaign(spec: Any, seed: int, workers: int, cache_dir: Path) -> dict[str, Any]:
    spec = spec.model_copy(update={"seed": seed})
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        archive = open_archive(url)
        campaign_id = create_campaign(archive, spec)
        started = time.perf_counter()
        status = run_campaign(
            RunnerConfig(database_url=url, cache_dir=cache_dir, local_num_cpus=workers),
            campaign_id,
        )
        wall = time.perf_counter() - started
        rows, validity = campaign_report(archive, campaign_id)
        # (public, held-out) selection-seed scores of the proposed candidates, for pooling.
        proposed = {r.id for r in rows if r.origin != "baseline"}
        stages = campaign_stages(spec)
        public, held = selection_scores(
            [c for c in archive.candidate_summaries(campaign_id=campaign_id) if c.id in proposed],
            archive.campaign_scores(campaign_id=campaign_id),
            stages=stages,
        )
        judged = next((s for s in reversed(stages) if s.public and s.held_out), None)
        pairs = [] if judged is None else shared(public[judged.name], held[judged.name])
        verdicts = sum(
            1
            for r in rows
            if r.id in proposed and (r.has_score or r.status == str(CandidateStatus.FAILED))
        )
        top = [r for r in rows if r.id in proposed and r.score is not None][:TOP]
        confirmed = [r for r in rows if r.id in proposed and r.confirmation == "confirmed"]
        best = max(confirmed, key=lambda r: r.fresh_held_out_low or 0.0, default=None)
        archive.engine.dispose()
    rho = spearman([p for p, _ in pairs], [h for _, h in pairs])
    return {
        "seed": seed,
        "status": str(status),
        "wall_s": round(wall, 1),
        "proposed": len(proposed),
        "verdicts": verdicts,
        "verdicts_per_cpu_hour": round(verdicts / (wall / 3600 * workers), 1),
        "false_elites": sum(_held_out_below(r) for r in top),
        "top": len(top),
        "confirmed": len(confirmed),
        "best_confirmed": None
        if best is None
        else {
            "name": best.name,
            "score": best.fresh_held_out_score,
            "low": best.fresh_held_out_low,
            "high": best.fresh_held_out_high,
            "n": best.fresh_held_out_seeds,
        },
        "spearman": rho.as_dict(),
        "validity": validity.as_dict(),
        "pairs": pairs,
    }


def _fmt_rho(r: dict[str, Any]) -> str:
    if r["rho"] is None:
        return f"- (n={r['n']})"
    if r["low"] is None:
        return f"{r['rho']:+.2f} (n={r['n']})"
    return f"{r['rho']:+.2f} [{r['low']:+.2f}, {r['high']:+.2f}] (n={r['n']})"


def _fmt_best(b: dict[str, Any] | None) -> str:
    if b is None:
        return "none"
    return f"{b['name']} {b['score']:+.4f} [{b['low']:+.4f}, {b['high']:+.4f}] (n={b['n']})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=_HERE.parent / "examples" / "quickstart.yaml")
    parser.add_argument("--seeds", default="0,1,2", help="campaign seeds, comma-separated")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    spec = load_spec(args.spec)
    # One reference cache for every campaign of the run: references depend on the task only.
    with tempfile.TemporaryDirectory(prefix="lossforge-bench-cache-") as cache:
        runs = [_campaign(spec, int(s), args.workers, Path(cache)) for s in args.seeds.split(",")]

    pooled_pairs = [tuple(p) for r in runs for p in r["pairs"]]
    pooled_rho = spearman([p for p, _ in pooled_pairs], [h for _, h in pooled_pairs]).as_dict()
    top = sum(r["top"] for r in runs)
    false = sum(r["false_elites"] for r in runs)
    wall = sum(r["wall_s"] for r in runs)
    verdicts = sum(r["verdicts"] for r in runs)
    bests = [r["best_confirmed"] for r in runs if r["best_confirmed"] is not None]
    pooled = {
        "seed": "pooled",
        "wall_s": round(wall, 1),
        "verdicts_per_cpu_hour": round(verdicts / (wall / 3600 * args.workers), 1),
        "false_elites": false,
        "top": top,
        "confirmed": sum(r["confirmed"] for r in runs),
        "best_confirmed": max(bests, key=lambda b: b["low"], default=None),
        "spearman": pooled_rho,
    }
    print(
        f"discovery benchmark: {args.spec.name}, campaign seeds {args.seeds}, "
        f"{args.workers} workers"
    )
    print()
    print(
        "| campaign seed | best confirmed held-out (fresh seeds) | false elites (top 5) "
        "| Spearman(public, held-out) | verdicts per CPU-hour | wall |"
    )
    print("|---|---|---|---|---|---|")
    for r in [*runs, pooled]:
        print(
            f"| {r['seed']} | {_fmt_best(r['best_confirmed'])} | "
            f"{r['false_elites']}/{r['top']} | {_fmt_rho(r['spearman'])} | "
            f"{r['verdicts_per_cpu_hour']} | {r['wall_s']} s |"
        )
    numbers = {
        "runs": [{k: v for k, v in r.items() if k != "pairs"} for r in runs],
        "pooled": pooled,
    }
    line = json.dumps(numbers)
    if args.out:
        args.out.write_text(line + "\n")
    print(line)


if __name__ == "__main__":
    main()
