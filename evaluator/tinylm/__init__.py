"""The tinylm stage: tiny transformer policies on task families with programmatic rewards.

A run fine-tunes a tiny GPT-2 (or Llama) policy, built locally from a config with a word-level
tokenizer, starting from a reference made by supervised training on imperfect demonstrations
(cached on disk), on preference pairs of reference samples labelled by a noisy annotator of a
misspecified proxy of the task's true reward (as a learned reward model is, so pushing far from
the reference can lower the true reward); it then measures the policy's true reward and KL on
held-out prompts. Modules, in the order data flows:

    tasks.py       task families: prompts, imperfect demonstrator, true and proxy rewards,
                   held-out flag
    tokenizer.py   word-level tokenizer from a task vocabulary (`tokenizers`, no downloads)
    model.py       config -> seeded tiny model; summed completion log-probs; seeded sampling
    reference.py   SFT of the reference on demonstrations, cached by content hash
    pairs.py       preference pairs from reference samples labelled by the proxy, label noise
    trainer.py     the lean training loop with cached reference log-probs
    grouped.py     K copies of a model with stacked weights and one batched forward
    population.py  the population trainer: K losses train K copies in one pass
    metrics.py     reward, Monte Carlo KL, implicit reward accuracy, log-prob drift
    stage.py       run_tinylm(loss, ...) -> RunResult and
                   run_tinylm_population(losses, ...) -> list[RunResult]; TinyLMConfig, their
                   settings, is in evaluator.stage_configs
    trl_compare.py the same steps through TRL's DPOTrainer (agreement test and benchmark only)

Nothing here aggregates seeds, scores against DPO (DPO's beta grid is a job's `frontier`, see
evaluator.worker) or hides held-out metrics: callers do, reading
`TASKS[name].held_out`.
"""

from evaluator.tinylm.stage import (
    HELD_OUT_TASKS,
    PUBLIC_TASKS,
    TASKS,
    TinyLMConfig,
    run_tinylm,
    run_tinylm_population,
)

__all__ = [
    "HELD_OUT_TASKS",
    "PUBLIC_TASKS",
    "TASKS",
    "TinyLMConfig",
    "run_tinylm",
    "run_tinylm_population",
]
