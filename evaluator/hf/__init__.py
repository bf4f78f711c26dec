"""The hf stage: Hugging Face causal LMs and preference datasets, trained with TRL's DPOTrainer
using the candidate's rebuilt graph as the loss, scored by a reward model and/or an LLM judge.

Modules, in the order a run uses them:

    config.py       HFConfig (TRL's DPOConfig names), tasks = the beta grid
    errors.py       the stage's exceptions (missing model or data, bad config, silent judge...)
    data.py         preference rows from JSONL, a dataset directory or the hub; fixed held-out rows
    models.py       policy, references, reward model and tokenizer, with errors naming the source
    trl_adapter.py  the one module touching TRL internals: DPOTrainer with a contract loss
    scoring.py      samples, Monte Carlo KL, reward-model scores, held-out pair metrics
    judge.py        pairwise LLM judge (OpenAI-compatible), both orders, win rate and interval
    stage.py        run_hf(loss, task=, seed=, config=) -> RunResult, failures as statuses

Importing this package (or `config`) is light: `stage` pulls in TRL and is imported by the worker
that runs an hf job. Nothing here knows Ray, the archive or the campaign.
"""

from evaluator.hf.config import HFConfig, JudgeSettings, LoraSettings

__all__ = ["HFConfig", "JudgeSettings", "LoraSettings"]
