"""Parity with TRL 1.16: every baseline with a `trl_loss_type` matches DPOTrainer's own loss code.

TRL computes its losses inside `DPOTrainer._compute_loss(model, inputs)` (reached through the public
`compute_loss`), from the per-token log-probs the model returns and the reference log-probs in the
batch, and returns only the batch mean. So the harness builds a real `DPOTrainer` around a tiny
GPT-2 and a word-level tokenizer made locally (no downloads, HF_HUB_OFFLINE=1), and calls
`compute_loss` with a wrapper around the trainer's own model that runs its real forward and then
swaps in scripted per-token log-probs: each completion's tokens carry log-probs that sum to the
summed log-prob we want. Reference log-probs come from the batch, as after TRL's precompute.
Per-example losses are TRL's mean over a batch of one; the full-batch mean is checked too.

Where TRL's defaults differ from the baselines by design, the test configures TRL to the
baseline's constant:
- `robust`: TRL's `label_smoothing` defaults to 0.0, which makes robust DPO plain DPO; the baseline
  fixes the flip rate at 0.1 (the value TRL's docs give as the paper's typical one).
- `exo_pair`: TRL refuses `label_smoothing=0`; the baseline fixes ε = 1e-3 (the EXO paper's value).
  TRL builds ε as a float32 tensor, so its log ε carries float32 rounding (< 1e-6 here).
- `ipo`: TRL divides each log-ratio by the number of completion tokens (clamped to >= 1); the
  baseline gets the same counts as `chosen_lengths` / `rejected_lengths`.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from dataclasses import fields, replace
from typing import Any

import pytest
import torch

from evaluator.baselines import BASELINES
from tests.evaluator.conftest import LossFn, PreferenceBatch, call_loss, make_batch

TOLERANCE = 1e-6
BETAS = (0.01, 0.1, 0.5)
# Policy within a few nats of the reference (the realistic case) and within 20 (saturated branches).
POLICY_DRIFTS = (3.0, 20.0)
BATCH_SIZE = 8
PROMPT_LENGTH = 2
VOCAB_SIZE = 64
LABEL_SMOOTHING = {"robust": 0.1, "exo_pair": 1e-3}  # TRL's label_smoothing, per loss_type
WITH_TRL = sorted(name for name, b in BASELINES.items() if b.trl_loss_type is not None)


@pytest.fixture(scope="module")
def trainer(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A real DPOTrainer around a tiny local GPT-2; nothing is downloaded."""
    with pytest.MonkeyPatch.context() as env:
        env.setenv("HF_HUB_OFFLINE", "1")
        from datasets import Dataset
        from tokenizers import Tokenizer, models, pre_tokenizers
        from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
        from trl import DPOConfig, DPOTrainer

        words = ["<pad>", "<eos>", "<unk>"] + [f"w{i}" for i in range(VOCAB_SIZE - 3)]
        word_level = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, "<unk>"))
        word_level.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
        tokenizer = PreTrainedTokenizerFast(
            tokenizer_object=word_level, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
        )
        config = GPT2Config(
            n_layer=1, n_head=2, n_embd=16, vocab_size=VOCAB_SIZE, n_positions=128,
            bos_token_id=1, eos_token_id=1, pad_token_id=0,
        )  # fmt: skip
        torch.manual_seed(0)
        dataset = Dataset.from_dict(
            {"prompt": ["w1 w2", "w3"], "chosen": [" w4 w5", " w6"], "rejected": [" w7", " w8 w9"]}
        )
        with warnings.catch_warnings():  # TRL's own defaults use a name transformers deprecates
            warnings.filterwarnings(
                "ignore", "`gradient_checkpointing` is deprecated", FutureWarning
            )
            args = DPOConfig(
                output_dir=str(tmp_path_factory.mktemp("dpo")),
                report_to="none",
                use_cpu=True,
                loss_type=["sigmoid"],
                save_strategy="no",
                logging_strategy="no",
            )
        dpo = DPOTrainer(
            model=GPT2LMHeadModel(config),
            ref_model=GPT2LMHeadModel(config),
            args=args,
            train_dataset=dataset,
            processing_class=tokenizer,
        )
    # Read reference log-probs from the batch, as TRL does once they are precomputed.
    dpo.precompute_ref_logps = True
    assert dpo.args.discopop_tau == 0.05  # the τ our LRML baseline hard-codes
    # A model this small runs ~10x faster on one thread than with thread start-up on every op.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield dpo
    torch.set_num_threads(threads)


class ScriptedLogProbs(torch.nn.Module):
    """Runs the trainer's model (TRL's fused LM head) and replaces its per-token log-probs."""

    def __init__(self, model: torch.nn.Module, per_token_logps: torch.Tensor) -> None:
        super().__init__()
        self.model = model
        self.per_token_logps = per_token_logps  # (2B, T-1): rows [chosen; rejected]

    def forward(self, **kwargs: Any) -> Any:
        outputs = self.model(**kwargs)
        outputs.log_probs = self.per_token_logps
        return outputs


def trl_batch(batch: PreferenceBatch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    """TRL's padded [chosen; rejected] batch for `batch`, and per-token log-probs (2B, T-1) whose
    sums over each completion are the batch's policy log-probs. The token ids only feed the real
    forward (TRL's entropy and accuracy metrics), never the loss."""
    lengths = torch.cat([batch.chosen_lengths, batch.rejected_lengths])  # (2B,)
    width = PROMPT_LENGTH + int(lengths.max())
    positions = torch.arange(width)[None, :]  # (1, T)
    ends = PROMPT_LENGTH + lengths[:, None]  # (2B, 1)
    attention_mask = (positions < ends).long()  # (2B, T)
    completion_mask = ((positions >= PROMPT_LENGTH) & (positions < ends)).long()
    tokens = torch.randint(
        3, VOCAB_SIZE, attention_mask.shape, generator=torch.Generator().manual_seed(0)
    )
    summed = torch.cat([batch.policy_chosen_logps, batch.policy_rejected_logps])  # (2B,)
    # The label at position t + 1 is scored at t, so completion tokens sit at mask[:, 1:].
    per_token = (summed / lengths)[:, None] * completion_mask[:, 1:].to(summed.dtype)
    inputs = {
        "input_ids": tokens * attention_mask,  # pad id 0
        "attention_mask": attention_mask,
        "completion_mask": completion_mask,
        "ref_chosen_logps": batch.ref_chosen_logps,
        "ref_rejected_logps": batch.ref_rejected_logps,
    }
    return inputs, per_token


def take(batch: PreferenceBatch, index: int) -> PreferenceBatch:
    """Example `index` as a batch of one."""
    values = {}
    for field in fields(batch):
        value = getattr(batch, field.name)
        values[field.name] = (
            value[:, index : index + 1] if value.ndim == 2 else value[index : index + 1]
        )
    return replace(batch, **values)


def trl_loss(trainer: Any, loss_type: str, beta: float, batch: PreferenceBatch) -> torch.Tensor:
    """TRL's loss (the batch mean, a 0-dim tensor) for `batch` under `loss_type`."""
    trainer.loss_types = [loss_type]
    trainer.loss_weights = [1.0]
    trainer.beta = beta
    trainer.label_smoothing = LABEL_SMOOTHING.get(loss_type, 0.0)
    inputs, per_token = trl_batch(batch)
    with torch.no_grad():
        return trainer.compute_loss(ScriptedLogProbs(trainer.model, per_token), inputs)


def test_scripted_log_probs_reach_trl_as_summed_log_probs(trainer: Any) -> None:
    """The harness itself: TRL's DPO loss equals -logσ(βΔ) computed from the scripted sums."""
    batch = make_batch(1, seed=99)
    margin = (batch.policy_chosen_logps - batch.ref_chosen_logps) - (
        batch.policy_rejected_logps - batch.ref_rejected_logps
    )
    expected = -torch.nn.functional.logsigmoid(0.1 * margin)[0]
    torch.testing.assert_close(trl_loss(trainer, "sigmoid", 0.1, batch), expected)


@pytest.mark.parametrize("name", WITH_TRL)
def test_matches_trl_per_example(
    name: str, trainer: Any, compiled_baselines: dict[str, LossFn]
) -> None:
    baseline, fn = BASELINES[name], compiled_baselines[name]
    assert baseline.trl_loss_type is not None
    worst = 0.0
    cases = [(beta, drift) for beta in BETAS for drift in POLICY_DRIFTS]
    for seed, (beta, drift) in enumerate(cases):
        batch = make_batch(BATCH_SIZE, seed=100 + seed, policy_drift=drift)
        ours = call_loss(fn, baseline.parameters, batch, beta)  # (B,)
        theirs = torch.stack(
            [
                trl_loss(trainer, baseline.trl_loss_type, beta, take(batch, i))
                for i in range(batch.size)
            ]
        )
        assert theirs.dtype == torch.float64
        worst = max(worst, float((ours - theirs).abs().max()))
        torch.testing.assert_close(
            trl_loss(trainer, baseline.trl_loss_type, beta, batch),
            ours.mean(),
            rtol=0,
            atol=TOLERANCE,
        )
    assert worst < TOLERANCE, f"{name} vs TRL {baseline.trl_loss_type}: max |diff| {worst:.3g}"


def test_trl_is_the_pinned_release() -> None:
    import trl

    assert trl.__version__.startswith("1.16."), trl.__version__
