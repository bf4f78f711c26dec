"""The job queue's policy: slots, populations, order. The dispatcher is a recorder passed in
through the constructor (the queue's only collaborator); Ray itself is exercised by the engine
tests."""

from __future__ import annotations

from discovery.scheduler import JobQueue
from evaluator.jobs import EvalJob


class RecordingDispatcher:
    def __init__(self) -> None:
        self.sent: list[list[str]] = []  # loss names per task sent

    def submit(self, job: EvalJob) -> None:
        self.sent.append([job.loss_name])

    def submit_batch(self, jobs: list[EvalJob]) -> None:
        self.sent.append([j.loss_name for j in jobs])


def job(
    name: str, *, stage: str = "bandit", task: str = "tabular", seed: int = 0, **config: object
) -> EvalJob:
    return EvalJob(
        stage=stage, task=task, seed=seed, loss_name=name, graph_json="{}", config=config
    )  # type: ignore[arg-type]


def queue(slots: int = 1) -> tuple[JobQueue, RecordingDispatcher]:
    dispatcher = RecordingDispatcher()
    return JobQueue(dispatcher, lambda: slots), dispatcher  # type: ignore[arg-type]


def test_jobs_of_one_stage_task_and_seed_leave_together_up_to_the_population_size() -> None:
    jobs, dispatcher = queue(slots=4)
    for i, name in enumerate("abcde"):
        jobs.add(job(name, population_size=2), i, stage_index=0, dpo=False)
    jobs.add(job("f", seed=1, population_size=2), 9, stage_index=0, dpo=False)
    assert jobs.dispatch() == 6
    assert dispatcher.sent == [["a", "b"], ["c", "d"], ["e"], ["f"]]


def test_no_more_batches_than_slots_and_a_finished_batch_frees_its_slot() -> None:
    jobs, dispatcher = queue(slots=1)
    a, b = job("a", task="tabular"), job("b", task="many_prompts")
    jobs.add(a, 1, stage_index=0, dpo=False)
    jobs.add(b, 2, stage_index=0, dpo=False)
    assert jobs.dispatch() == 1 and dispatcher.sent == [["a"]]
    assert jobs.dispatch() == 0  # the slot is taken
    assert jobs.finished(a) == 1
    assert jobs.dispatch() == 1 and dispatcher.sent == [["a"], ["b"]]
    assert len(jobs) == 1


def test_waiting_jobs_join_the_population_of_those_queued_before_them() -> None:
    jobs, dispatcher = queue(slots=1)
    first = job("first", task="many_prompts")
    jobs.add(first, 0, stage_index=0, dpo=False)
    jobs.dispatch()
    for i, name in enumerate("xyz"):  # arrive while the only worker is busy
        jobs.add(job(name), i + 1, stage_index=0, dpo=False)
    jobs.finished(first)
    jobs.dispatch()
    assert dispatcher.sent == [["first"], ["x", "y", "z"]]


def test_dpo_first_then_later_stages_then_the_oldest() -> None:
    jobs, dispatcher = queue(slots=1)
    jobs.add(job("old", task="tabular"), 1, stage_index=0, dpo=False)
    jobs.add(job("promoted", stage="tinylm", task="sorting"), 2, stage_index=1, dpo=False)
    jobs.add(job("dpo", task="many_prompts"), 3, stage_index=0, dpo=True)
    order = []
    for _ in range(3):
        jobs.dispatch()
        order.append(dispatcher.sent[-1][0])
        jobs.finished(next(j for j, _ in jobs if j.loss_name == order[-1]))
    assert order == ["dpo", "promoted", "old"]


def test_stages_without_a_population_trainer_go_to_ray_at_once() -> None:
    jobs, dispatcher = queue(slots=1)
    jobs.add(job("busy", task="many_prompts"), 0, stage_index=0, dpo=False)
    jobs.dispatch()
    jobs.add(job("hf-run", stage="hf", task="beta=0.1"), 1, stage_index=2, dpo=False)
    assert dispatcher.sent == [["busy"], ["hf-run"]]  # no slot needed, no batch formed
    assert jobs.dispatch() == 0


def test_drain_forgets_every_open_job() -> None:
    jobs, _ = queue(slots=1)
    jobs.add(job("a"), 7, stage_index=0, dpo=False)
    jobs.add(job("b", seed=3), 8, stage_index=0, dpo=False)
    jobs.dispatch()
    assert sorted(jobs.drain()) == [7, 8]
    assert len(jobs) == 0


def test_lower_seeds_first_so_the_first_runs_of_each_task_go_to_different_workers() -> None:
    jobs, dispatcher = queue(slots=2)
    for i, (task, seed) in enumerate(
        [("arithmetic", 0), ("arithmetic", 1), ("sorting", 0), ("sorting", 1)]
    ):
        jobs.add(
            job(f"dpo-{task}-{seed}", stage="tinylm", task=task, seed=seed),
            i,
            stage_index=1,
            dpo=True,
        )
    jobs.dispatch()
    assert dispatcher.sent == [["dpo-arithmetic-0"], ["dpo-sorting-0"]]
