"""API benchmark: leaderboard latency with a 10,000-candidate archive under 50 concurrent clients.

    .venv/bin/python bench/api.py [--candidates 10000] [--clients 50] [--requests 20]
        [--backends sqlite,postgresql] [--postgres URL] [--out FILE]

For each backend: fills a new archive with one campaign of N candidates (the DPO baseline and
N-1 proposed ones, each with two DONE bandit evaluations scored vs DPO, a realistic row size:
source, graph JSON, metrics), starts `lossforge serve` as its own process on loopback, and sends
`GET /api/campaigns/1/leaderboard?offset=...&limit=50` from C concurrent clients (threads, each on
its own keep-alive connection; random pages), R requests each, after one warm-up request.
Reported side by side:
- cold: the first request, which computes the leaderboard from the archive;
- p50 / p99 / max of the warm requests and their throughput (target: p99 <= 100 ms);
- the cold-over-p50 ratio (what the per-campaign cache saves each reader).
The load comes from this process over real HTTP, so on a 2-core machine clients and server share
the cores: the numbers include that contention. Prints a table, then one JSON line.
"""

from __future__ import annotations

import sys
from pathlib import Path

_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))

import argparse  # noqa: E402
import http.client  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import random  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import uuid  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import httpx  # noqa: E402
import numpy as np  # noqa: E402
import psycopg  # noqa: E402
from psycopg import sql  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from discovery.archive import open_archive  # noqa: E402
from discovery.archive.models import Candidate, Evaluation  # noqa: E402
from discovery.archive.records import GRAPH_JSON_KEY  # noqa: E402
from discovery.runner import create_campaign  # noqa: E402
from discovery.spec import parse_spec  # noqa: E402
from evaluator.baselines import BASELINES  # noqa: E402

SPEC = {
    "name": "bench-api",
    "stages": [{"name": "bandit", "tasks": ["tabular"], "seeds": 2}],
    "budget": {"candidates": 100_000},
    "baselines": ["dpo"],
}
TARGET_P99_MS = 100.0
_CHUNK = 2000


def fill(url: str, candidates: int, seed: int = 0) -> None:
    """One campaign with `candidates` candidates and two scored runs each, inserted in bulk (the
    store's one-row-per-transaction writes would take minutes for a benchmark's set-up)."""
    rng = random.Random(seed)
    archive = open_archive(url)
    try:
        campaign_id = create_campaign(archive, parse_spec(SPEC))
        # Stored as the archive stores a graph (bulk rows bypass `update_candidate`).
        graph = {GRAPH_JSON_KEY: json.dumps({"nodes": [{"op": "input", "name": "x"}] * 40})}
        rows = []
        for i in range(candidates):
            name = "dpo" if i == 0 else f"evo-{i:05d}"
            rows.append(
                {
                    "campaign_id": campaign_id,
                    "name": name,
                    "thought": "bench",
                    "source": BASELINES["dpo"].source,
                    "origin": "baseline" if i == 0 else "evolve",
                    "status": "EVALUATED",
                    "canonical_code": BASELINES["dpo"].source,
                    "graph": graph,
                    "fingerprint": uuid.UUID(int=rng.getrandbits(128)).hex,
                    "parent_ids": [],
                    "provenance": {},
                }
            )
        with archive.engine.begin() as connection:
            for start in range(0, len(rows), _CHUNK):
                connection.execute(insert(Candidate), rows[start : start + _CHUNK])
        ids = [c.id for c in archive.list_candidates(campaign_id=campaign_id)]
        evaluations = [
            {
                "candidate_id": cid,
                "stage": "bandit",
                "task": "tabular",
                "seed": seed_,
                "attempt": 0,
                "status": "DONE",
                "score": 0.0 if k == 0 else rng.gauss(-0.05, 0.05),
                "metrics": {"reward/normalized": rng.random(), "kl/ref": rng.random()},
                "timings": {"seconds": 0.5},
            }
            for k, cid in enumerate(ids)
            for seed_ in (0, 1)
        ]
        with archive.engine.begin() as connection:
            for start in range(0, len(evaluations), _CHUNK):
                connection.execute(insert(Evaluation), evaluations[start : start + _CHUNK])
        archive.append_event(campaign_id=campaign_id, kind="finish", payload={})
    finally:
        archive.engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve(url: str, workdir: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    env = {**os.environ, "LOSSFORGE_DATABASE_URL": url, "LOSSFORGE_LOG_LEVEL": "WARNING"}
    server = subprocess.Popen(
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port)],
        env=env,
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=(workdir / "serve.log").open("ab"),
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/healthz", timeout=2).status_code == 200:
                return server, base
        except httpx.HTTPError:
            time.sleep(0.2)
    server.kill()
    raise RuntimeError("lossforge serve did not start")


def load(base: str, *, clients: int, requests: int, total: int) -> list[float]:
    """Latencies of `clients` threads, each on its own keep-alive connection (http.client: a
    light client, so that the load generator, which shares the cores, measures the server)."""
    url = urlsplit(base)
    latencies: list[float] = []
    lock = threading.Lock()
    failures: list[str] = []

    def one_client(seed: int) -> None:
        rng = random.Random(seed)
        connection = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        mine = []
        try:
            for _ in range(requests):
                offset = rng.randrange(0, max(1, total - 50))
                begin = time.perf_counter()
                connection.request("GET", f"/api/campaigns/1/leaderboard?offset={offset}&limit=50")
                response = connection.getresponse()
                body = response.read()
                mine.append(time.perf_counter() - begin)
                if response.status != 200 or len(json.loads(body)["rows"]) != 50:
                    failures.append(f"status {response.status}")
                    return
        finally:
            connection.close()
            with lock:
                latencies.extend(mine)

    threads = [threading.Thread(target=one_client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if failures:
        raise RuntimeError(f"{len(failures)} clients got a bad response: {failures[0]}")
    return latencies


def run_backend(url: str, args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    begin = time.perf_counter()
    fill(url, args.candidates)
    filled = time.perf_counter() - begin
    server, base = serve(url, workdir)
    try:
        begin = time.perf_counter()
        first = httpx.get(f"{base}/api/campaigns/1/leaderboard", timeout=120)
        cold = time.perf_counter() - begin
        assert first.status_code == 200 and first.json()["total"] == args.candidates
        begin = time.perf_counter()
        latencies = load(base, clients=args.clients, requests=args.requests, total=args.candidates)
        elapsed = time.perf_counter() - begin
    except Exception:
        sys.stderr.write((workdir / "serve.log").read_text(errors="replace")[-3000:])
        raise
    finally:
        server.terminate()
        server.wait(timeout=30)
    ms = np.array(latencies) * 1000
    return {
        "fill_s": filled,
        "cold_ms": cold * 1000,
        "p50_ms": float(np.percentile(ms, 50)),
        "p99_ms": float(np.percentile(ms, 99)),
        "max_ms": float(ms.max()),
        "requests_per_s": len(latencies) / elapsed,
        "cold_over_p50": cold * 1000 / float(np.percentile(ms, 50)),
    }


def postgres_database(admin_url: str) -> tuple[str, str]:
    name = f"lossforge_bench_{uuid.uuid4().hex[:10]}"
    libpq = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return make_url(admin_url).set(database=name).render_as_string(hide_password=False), name


def drop_postgres_database(admin_url: str, name: str) -> None:
    libpq = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(libpq, autocommit=True) as admin:
        admin.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=100, help="per client")
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--postgres", default="postgresql+psycopg://127.0.0.1:5432/test")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()

    results: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="lossforge-bench-api-") as tmp:
        workdir = Path(tmp)
        for backend in args.backends.split(","):
            if backend == "sqlite":
                results[backend] = run_backend(f"sqlite:///{workdir / 'a.db'}", args, workdir)
            elif backend == "postgresql":
                url, name = postgres_database(args.postgres)
                try:
                    results[backend] = run_backend(url, args, workdir)
                finally:
                    drop_postgres_database(args.postgres, name)
            else:
                raise SystemExit(f"unknown backend {backend!r}")

    print(
        f"leaderboard, {args.candidates} candidates, {args.clients} concurrent clients x "
        f"{args.requests} requests (limit 50, random pages)"
    )
    print(
        f"{'backend':<11}{'cold ms':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'req/s':>8}"
        f"{'cold/p50':>10}  p99 <= {TARGET_P99_MS:g} ms"
    )
    for backend, r in results.items():
        ok = "yes" if r["p99_ms"] <= TARGET_P99_MS else "NO"
        print(
            f"{backend:<11}{r['cold_ms']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
            f"{r['max_ms']:>9.1f}{r['requests_per_s']:>8.0f}{r['cold_over_p50']:>9.0f}x  {ok}"
        )
    record = {"candidates": args.candidates, "clients": args.clients, "results": results}
    if args.out:
        args.out.write_text(json.dumps(record, indent=2))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
