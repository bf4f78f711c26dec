"""The job queue's policy: slots, populations, order. The backend is a recorder passed in
through the constructor (the queue's only collaborator), speaking the `Backend` protocol; Ray
itself is exercised by the engine tests."""

from __future__ import annotations

from evaluator.job import EvalJob
from evaluator.ports import Backend, Evaluations
from evaluator.queue import JobQueue
from evaluator.results import RunResult, RunStatus
from evaluator.stage_configs import parse_stage_config


class RecordingBackend:
    """Records what is sent; `finish(name)` makes that job's result ready for `collect`."""

    def __init__(self, slots: int) -> None:
        self.sent: list[list[str]] = []  # loss names per task sent
        self.running: dict[str, EvalJob] = {}
        self.ready: list[EvalJob] = []
        self.closed = False
        self._slots = slots

    def submit(self, job: EvalJob) -> None:
        self.sent.append([job.loss_name])
        self.running[job.loss_name] = job

    def submit_batch(self, jobs: list[EvalJob]) -> None:
        self.sent.append([j.loss_name for j in jobs])
        self.running |= {j.loss_name: j for j in jobs}

    def collect(self, timeout_s: float = 0.0) -> list[tuple[EvalJob, RunResult]]:
        done, self.ready = self.ready, []
        return [(job, RunResult(status=RunStatus.DONE)) for job in done]

    def slots(self) -> int:
        return self._slots

    def close(self) -> None:
        self.closed = True

    def finish(self, name: str) -> None:
        self.ready.append(self.running.pop(name))


def job(
    name: str, *, stage: str = "bandit", task: str = "tabular", seed: int = 0, **config: object
) -> EvalJob:
    return EvalJob(
        stage=stage,  # type: ignore[arg-type]
        task=task,
        seed=seed,
        loss_name=name,
        graph_json="{}",
        config=parse_stage_config(stage, config),
    )


def queue(slots: int = 1) -> tuple[JobQueue, RecordingBackend]:
    backend = RecordingBackend(slots)
    return JobQueue(backend), backend


def test_the_queue_and_the_recorder_speak_the_protocols() -> None:
    jobs, backend = queue()
    evaluations: Evaluations = jobs  # what the engine holds
    recorder: Backend = backend
    assert evaluations.pending() == [] and recorder.slots() == 1


def test_jobs_of_one_stage_task_and_seed_leave_together_up_to_the_population_size() -> None:
    jobs, backend = queue(slots=4)
    for i, name in enumerate("abcde"):
        jobs.submit(job(name, population_size=2), i, stage_index=0, dpo=False)
    jobs.submit(job("f", seed=1, population_size=2), 9, stage_index=0, dpo=False)
    assert jobs.dispatch() == 6
    assert backend.sent == [["a", "b"], ["c", "d"], ["e"], ["f"]]


def test_no_more_batches_than_slots_and_a_finished_batch_frees_its_slot() -> None:
    jobs, backend = queue(slots=1)
    a, b = job("a", task="tabular"), job("b", task="many_prompts")
    jobs.submit(a, 1, stage_index=0, dpo=False)
    jobs.submit(b, 2, stage_index=0, dpo=False)
    assert jobs.dispatch() == 1 and backend.sent == [["a"]]
    assert jobs.dispatch() == 0  # the slot is taken
    backend.finish("a")
    assert [key for key, _ in jobs.collect()] == [1]
    assert backend.sent == [["a"]]  # the freed slot waits for what the result leads to
    assert jobs.collect() == [] and backend.sent == [["a"], ["b"]]  # then it is filled
    assert len(jobs) == 1


def test_waiting_jobs_join_the_population_of_those_queued_before_them() -> None:
    jobs, backend = queue(slots=1)
    first = job("first", task="many_prompts")
    jobs.submit(first, 0, stage_index=0, dpo=False)
    jobs.dispatch()
    for i, name in enumerate("xyz"):  # arrive while the only worker is busy
        jobs.submit(job(name), i + 1, stage_index=0, dpo=False)
    backend.finish("first")
    jobs.collect()  # its result
    jobs.collect()  # the freed slot
    assert backend.sent == [["first"], ["x", "y", "z"]]


def test_dpo_first_then_later_stages_then_the_oldest() -> None:
    jobs, backend = queue(slots=1)
    jobs.submit(job("old", task="tabular"), 1, stage_index=0, dpo=False)
    jobs.submit(job("promoted", stage="tinylm", task="sorting"), 2, stage_index=1, dpo=False)
    jobs.submit(job("dpo", task="many_prompts"), 3, stage_index=0, dpo=True)
    order = []
    for _ in range(3):
        jobs.dispatch()
        order.append(backend.sent[-1][0])
        backend.finish(order[-1])
        jobs.collect(timeout_s=0.0)
    assert order == ["dpo", "promoted", "old"]


def test_stages_without_a_population_trainer_go_to_ray_at_once() -> None:
    jobs, backend = queue(slots=1)
    jobs.submit(job("busy", task="many_prompts"), 0, stage_index=0, dpo=False)
    jobs.dispatch()
    jobs.submit(
        job("hf-run", stage="hf", task="beta=0.1", model="gpt2", dataset="pairs.jsonl"),
        1,
        stage_index=2,
        dpo=False,
    )
    assert backend.sent == [["busy"], ["hf-run"]]  # no slot needed, no batch formed
    assert jobs.dispatch() == 0


def test_close_stops_the_backend_and_forgets_every_open_job() -> None:
    jobs, backend = queue(slots=1)
    jobs.submit(job("a"), 7, stage_index=0, dpo=False)
    jobs.submit(job("b", seed=3), 8, stage_index=0, dpo=False)
    jobs.dispatch()
    assert sorted(key for key, _ in jobs.pending()) == [7, 8]
    assert sorted(jobs.close()) == [7, 8]
    assert backend.closed and len(jobs) == 0 and jobs.pending() == []


def test_lower_seeds_first_so_the_first_runs_of_each_task_go_to_different_workers() -> None:
    jobs, backend = queue(slots=2)
    for i, (task, seed) in enumerate(
        [("arithmetic", 0), ("arithmetic", 1), ("sorting", 0), ("sorting", 1)]
    ):
        jobs.submit(
            job(f"dpo-{task}-{seed}", stage="tinylm", task=task, seed=seed),
            i,
            stage_index=1,
            dpo=True,
        )
    jobs.dispatch()
    assert backend.sent == [["dpo-arithmetic-0"], ["dpo-sorting-0"]]
