"""`Sandbox`: the five layers in order, for one candidate at a time (thread-safe, parallel-safe).

    with Sandbox(SandboxConfig()) as sandbox:
        verdict = sandbox.validate(candidate)   # Candidate, or a proposer's reply as text

Order: the text checks of text.py (size caps, UTF-8, no hidden characters; linear time, before
any parse), parse (reply -> Candidate); layer 1 static checks (unless switched off); layer 2, the
candidate runs in a fresh hardened worker, which runs layer 3 (battery) and the child half of
layer 4 (capture) on the source; then, in this process and on the rebuilt graph only, layer 4
(rebuild against the allow-list, meta-device size checks, the child's probe values reproduced,
the cost bound), layer 3 again (so a forged report cannot pass a failing graph; its wide settings
drawn from a fresh seed unless `probe_seed` is set), and layer 5 (fingerprint). `validate`
returns a Verdict for every candidate and raises only `SandboxUnavailableError`, when the worker
pool itself cannot run.

The constructor only assigns; `start()` (or `with`) starts the pool and warms this process's
graph code; `close()` stops the pool if this Sandbox started it. This module never executes
candidate source: that happens only inside workers.
"""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import signal
import threading
import time
import warnings
from collections.abc import Iterator
from types import TracebackType

import torch

from sandbox import battery, fingerprint, probes, protocol, static, text
from sandbox.config import SandboxConfig
from sandbox.contract import REQUIRED_INPUTS, Candidate, canonical_inputs
from sandbox.errors import RejectionError, SandboxUnavailableError
from sandbox.graph import LossGraph, rebuild_graph
from sandbox.graph_capture import GRAPH_FORMAT
from sandbox.graph_meta import check_cost
from sandbox.hardening import EXIT_HARDENING_FAILED
from sandbox.isolation import ChildOutcome, Outcome, WorkerPool
from sandbox.verdict import RejectionCode, Stage, Verdict, VerdictStatus

logger = logging.getLogger(__name__)

_PARENT_CHECKS = threading.Lock()


@contextlib.contextmanager
def _parent_checks() -> Iterator[None]:
    """Serialize the parent-side graph checks and run them quietly on one torch thread.

    The checks use tensors of 1-24 elements; on a loaded 2-core machine torch's OpenMP team costs
    ~10 ms per op there (log_sigmoid always forks it), which would dominate validation. They run
    under one lock (they take ~20 ms) so that the thread count and the warning filters, both
    process-global, are saved and restored consistently; torch's UserWarnings about batch
    statistics at batch size 1 are expected there and silenced.
    """
    with _PARENT_CHECKS, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        saved = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            yield
        finally:
            torch.set_num_threads(saved)


def _warm_up_graph() -> str:
    """DPO's graph JSON, written out by hand (the parent never traces source)."""

    def call(target: str, *refs: int) -> dict[str, object]:
        return {
            "op": "call_function",
            "target": target,
            "args": [{"node": r} for r in refs],
            "kwargs": {},
        }

    inputs = list(REQUIRED_INPUTS)
    nodes = [{"op": "input", "name": n} for n in inputs]
    nodes += [
        call("operator.sub", 0, 2),
        call("operator.sub", 1, 3),
        call("operator.sub", 5, 6),
        call("operator.mul", 4, 7),
        call("F.logsigmoid", 8),
        call("operator.neg", 9),
    ]
    return json.dumps(
        {"format": GRAPH_FORMAT, "inputs": inputs, "nodes": nodes, "output": {"node": 10}}
    )


_SIGNAL_REASONS = {
    signal.SIGXCPU: (
        RejectionCode.CPU_LIMIT,
        "used more than {cpu} s of CPU time; a loss must run in milliseconds: no loops",
    ),
    signal.SIGSYS: (
        RejectionCode.FORBIDDEN_OPERATION,
        "made a system call the sandbox forbids "
        "(killed by SIGSYS); a loss may only compute with torch",
    ),
    signal.SIGXFSZ: (RejectionCode.FORBIDDEN_OPERATION, "tried to write a file; a loss may not"),
    signal.SIGKILL: (
        RejectionCode.MEMORY,
        "was killed by the kernel (SIGKILL), most likely for "
        "exhausting memory; a loss over a batch needs kilobytes",
    ),
}


class Sandbox:
    """Validates untrusted loss candidates. Inject `pool` to share one worker pool."""

    def __init__(self, config: SandboxConfig | None = None, pool: WorkerPool | None = None) -> None:
        self.config = config or SandboxConfig()
        self._pool = pool
        self._owns_pool = pool is None

    # -- lifecycle -------------------------------------------------------------------------------
    def start(self) -> None:
        """Start (or reuse) the worker pool and warm this process's graph code."""
        if self._pool is None:
            self._pool = WorkerPool(self.config)
        if not self._pool.alive:
            self._pool.start()
        with _parent_checks():
            graph = rebuild_graph(_warm_up_graph(), self.config.graph)
            battery.run_battery(graph, graph.input_names)
            fingerprint.fingerprint(graph)

    def close(self) -> None:
        if self._owns_pool and self._pool is not None:
            self._pool.close()

    def __enter__(self) -> Sandbox:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def pool(self) -> WorkerPool:
        if self._pool is None:
            raise SandboxUnavailableError("the sandbox is not started; call start()")
        return self._pool

    # -- duplicates ------------------------------------------------------------------------------
    def behaviour(self, graph_json: str) -> torch.Tensor | None:
        """An accepted loss's behaviour on the fixed settings (`fingerprint.behaviour`); None if
        its graph no longer rebuilds under this sandbox's limits."""
        return self._behaviour(graph_json, probes.SEED)

    def same_behaviour(self, graph_json: str, other_json: str) -> bool:
        """Are two accepted losses one loss? Judged on settings drawn from a fresh seed (or from
        `probe_seed`), so that matching another loss only where the fixed probes look is not
        enough to pass for it."""
        cfg = self.config
        seed = secrets.randbits(31) if cfg.probe_seed is None else cfg.probe_seed + 1
        mine, theirs = self._behaviour(graph_json, seed), self._behaviour(other_json, seed)
        if mine is None or theirs is None:
            return False
        return fingerprint.distance(mine, theirs) <= fingerprint.NEAR_DUPLICATE

    def _behaviour(self, graph_json: str, seed: int) -> torch.Tensor | None:
        with _parent_checks():
            try:
                graph = rebuild_graph(graph_json, self.config.graph)
                return fingerprint.behaviour(graph, seed)
            except Exception as exc:  # a stored graph is data: report it, do not crash intake
                logger.warning("sandbox: a stored graph did not rebuild (%s)", exc)
                return None

    # -- validation ------------------------------------------------------------------------------
    def validate(self, candidate: Candidate | str) -> Verdict:
        """Run every layer on `candidate`; a REJECTED verdict says which stage stopped it, why."""
        begin = time.perf_counter()
        timings: dict[str, float] = {}
        name = "candidate"
        try:
            if isinstance(candidate, Candidate):
                name = candidate.name
            # Size and characters first, in linear time, before the reply or the code is parsed.
            candidate = text.screen(candidate, max_source_bytes=self.config.max_source_bytes)
            name = candidate.name
            return self._validate(candidate, timings, begin)
        except RejectionError as exc:
            timings["total"] = round(1e3 * (time.perf_counter() - begin), 2)
            return Verdict(
                VerdictStatus.REJECTED, name, exc.stage, exc.code, exc.reason, timings_ms=timings
            )

    def _validate(self, candidate: Candidate, timings: dict[str, float], begin: float) -> Verdict:
        cfg = self.config
        mark = time.perf_counter()
        source = candidate.code  # its size and characters passed text.screen
        parameters: tuple[str, ...] | None = None
        if cfg.static_checks:
            report = static.check(source, max_bytes=cfg.max_source_bytes)
            if not report.ok:
                assert report.stage is not None and report.code is not None
                raise RejectionError(report.stage, report.code, report.reason)
            canonical, parameters = report.canonical_code, report.parameters
        else:
            canonical = static.canonicalize(source)
        mark = _lap(timings, "static", mark)

        child = self._run_isolated(protocol.encode_job(source, cfg.graph))
        mark = _lap(timings, "isolation", mark)
        if not child.ok:
            assert child.stage is not None and child.code is not None
            raise RejectionError(child.stage, child.code, child.reason)

        with _parent_checks():
            try:
                graph_text = json.dumps(child.graph, allow_nan=False)
            except (ValueError, RecursionError):
                raise RejectionError(
                    Stage.ISOLATION,
                    RejectionCode.BAD_REPORT,
                    "the sandboxed run returned a malformed graph",
                ) from None
            graph = rebuild_graph(graph_text, cfg.graph)
            _check_agreement(graph, child, parameters)
            check_cost(graph.graph_module, graph.input_names, cfg.graph)
            mark = _lap(timings, "graph", mark)
            seed = secrets.randbits(31) if cfg.probe_seed is None else cfg.probe_seed
            limits = battery.run_battery(graph, graph.input_names, seed=seed)
            mark = _lap(timings, "battery", mark)
            try:
                digest = fingerprint.fingerprint(graph)
            except Exception as exc:  # the graph already passed the battery; report, don't crash
                raise RejectionError(
                    Stage.FINGERPRINT,
                    RejectionCode.FINGERPRINT_FAILED,
                    f"fingerprinting failed ({type(exc).__name__}: {exc})",
                ) from None
            _lap(timings, "fingerprint", mark)
        timings["total"] = round(1e3 * (time.perf_counter() - begin), 2)
        return Verdict(
            VerdictStatus.ACCEPTED,
            candidate.name,
            timings_ms=timings,
            fingerprint=digest,
            graph_json=graph.graph_json,
            canonical_code=canonical,
            inputs=graph.input_names,
            limits=limits,
        )

    def _run_isolated(self, job: bytes) -> protocol.ChildReport:
        pool = self.pool
        if not pool.alive:
            logger.warning("sandbox: the worker pool had stopped; restarting it")
            pool.start()
        for _attempt in range(2):
            outcome = pool.run(job, timeout_s=self.config.timeout_s)
            if outcome.exit_code == EXIT_HARDENING_FAILED and not outcome.result:
                logger.error(
                    "sandbox: a worker failed to harden itself (%s); retrying on another",
                    outcome.output_tail.decode(errors="replace"),
                )
                continue
            return self._interpret(outcome)
        raise SandboxUnavailableError("sandbox workers keep failing to harden; see the log")

    def _interpret(self, outcome: ChildOutcome) -> protocol.ChildReport:
        cfg = self.config
        if outcome.outcome is Outcome.TIMEOUT:
            raise RejectionError(
                Stage.ISOLATION,
                RejectionCode.TIMEOUT,
                f"did not finish within {cfg.timeout_s:g} s; a loss must run in "
                "milliseconds: no loops, no sleeping, no waiting",
            )
        if outcome.outcome is Outcome.OUTPUT_FLOOD:
            raise RejectionError(
                Stage.ISOLATION,
                RejectionCode.OUTPUT_FLOOD,
                f"printed more than {cfg.max_output_bytes} bytes; a loss must not print",
            )
        if outcome.outcome is Outcome.RESULT_TOO_LARGE:
            raise RejectionError(
                Stage.ISOLATION,
                RejectionCode.OUTPUT_FLOOD,
                f"sent a result larger than {cfg.max_result_bytes} bytes",
            )
        if outcome.exit_signal is not None:
            code, text = _SIGNAL_REASONS.get(
                outcome.exit_signal,
                (RejectionCode.CRASHED, f"crashed with signal {outcome.exit_signal}"),
            )
            raise RejectionError(Stage.ISOLATION, code, text.format(cpu=cfg.cpu_seconds))
        if not outcome.result:
            raise RejectionError(
                Stage.ISOLATION,
                RejectionCode.CRASHED,
                f"exited (code {outcome.exit_code}) without reporting a result; a "
                "loss must return its losses, not end the process",
            )
        return protocol.decode_result(outcome.result)


def _lap(timings: dict[str, float], key: str, mark: float) -> float:
    now = time.perf_counter()
    timings[key] = round(1e3 * (now - mark), 2)
    return now


def _check_agreement(
    graph: LossGraph, child: protocol.ChildReport, parameters: tuple[str, ...] | None
) -> None:
    """The rebuilt graph must take the declared inputs and reproduce the child's probe values."""
    if child.inputs != graph.input_names or (
        parameters is not None and canonical_inputs(parameters) != graph.input_names
    ):
        raise RejectionError(
            Stage.GRAPH,
            RejectionCode.VALUE_MISMATCH,
            "the captured graph takes different inputs than the function declares",
        )
    batches = probes.value_probes()
    if len(child.values) != len(batches):
        raise RejectionError(
            Stage.GRAPH,
            RejectionCode.VALUE_MISMATCH,
            "the sandboxed run reported values for the wrong probe set",
        )
    for batch, reported in zip(batches, child.values, strict=True):
        with torch.no_grad():
            ours = battery.call_loss(
                graph, probes.select(batch, graph.input_names), "probe set, rebuilt graph"
            )
        theirs = torch.tensor(reported, dtype=torch.float64)
        ours64 = ours.to(torch.float64)
        if theirs.shape != ours64.shape:
            raise RejectionError(
                Stage.GRAPH,
                RejectionCode.VALUE_MISMATCH,
                "the sandboxed run reported values of the wrong shape",
            )
        same_nan = torch.isnan(theirs) == torch.isnan(ours64)
        close = torch.isclose(ours64, theirs, rtol=1e-4, atol=1e-5, equal_nan=True)
        if not bool((same_nan & close).all()):
            index = int((~(same_nan & close)).nonzero()[0, 0])
            raise RejectionError(
                Stage.GRAPH,
                RejectionCode.VALUE_MISMATCH,
                f"the captured graph computes {ours64[index].item():.6g} where the "
                f"function computed {theirs[index].item():.6g}; Python-level "
                "tricks do not survive capture: write the loss with torch ops only",
            )
