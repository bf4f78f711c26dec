"""The TRL adapter: a contract loss inside TRL's DPOTrainer equals TRL's own loss where TRL has
one, and several references reach a loss as (K, B) tensors and as their weighted combination."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset
from torch.utils.data import DataLoader
from trl import DPOTrainer

from evaluator.hf.config import HFConfig
from evaluator.hf.models import load_causal_lm, load_tokenizer
from evaluator.hf.trl_adapter import CandidateDPOTrainer, dpo_args
from evaluator.losses import Loss
from evaluator.worker import load_loss
from tests.evaluator.hf.conftest import HFFiles
from tests.evaluator.hf.local import preference_rows

BATCH = 8


def _args(files: HFFiles, tmp_path: Path, *, beta: float, loss_type: str = "sigmoid") -> Any:
    config = HFConfig(
        model=str(files.policy),
        dataset=str(files.plain),
        per_device_train_batch_size=BATCH,
        per_device_eval_batch_size=BATCH,
        num_train_pairs=BATCH,
        max_length=32,
    )
    args = dpo_args(config, beta=beta, seed=0, output_dir=tmp_path, use_cpu=True, bf16=False)
    args.loss_type = [loss_type]
    return args


def _first_batch(trainer: DPOTrainer) -> dict[str, torch.Tensor]:
    loader = DataLoader(trainer.train_dataset, batch_size=BATCH, collate_fn=trainer.data_collator)
    return next(iter(loader))


def _loss_and_grad(trainer: DPOTrainer) -> tuple[torch.Tensor, torch.Tensor]:
    trainer.model.train()
    loss = trainer.compute_loss(trainer.model, _first_batch(trainer))
    loss.backward()
    grad = trainer.model.get_input_embeddings().weight.grad  # (V, d)
    return loss.detach(), grad.clone()


@pytest.mark.parametrize(
    ("baseline", "loss_type"),
    [("dpo", "sigmoid"), ("lrml", "discopop"), ("ipo", "ipo"), ("hinge", "hinge")],
)
def test_a_baseline_graph_through_the_adapter_equals_trls_builtin_loss(
    hf_files: HFFiles, graphs: dict[str, str], tmp_path: Path, baseline: str, loss_type: str
) -> None:
    tokenizer = load_tokenizer(str(hf_files.policy))
    policy = load_causal_lm(str(hf_files.policy), role="policy")
    # Another model as the reference, so the margins are not all zero.
    reference = load_causal_lm(str(hf_files.other_ref), role="reference")
    data = Dataset.from_list(preference_rows(BATCH, seed=5))
    beta = 0.5
    ours = CandidateDPOTrainer(
        loss=load_loss(baseline, graphs[baseline]),
        ref_models=[copy.deepcopy(reference)],
        model=copy.deepcopy(policy),
        args=_args(hf_files, tmp_path / "ours", beta=beta),
        train_dataset=data,
        processing_class=tokenizer,
    )
    theirs = DPOTrainer(
        model=copy.deepcopy(policy),
        ref_model=copy.deepcopy(reference),
        args=_args(hf_files, tmp_path / "theirs", beta=beta, loss_type=loss_type),
        train_dataset=data,
        processing_class=tokenizer,
    )
    our_loss, our_grad = _loss_and_grad(ours)
    their_loss, their_grad = _loss_and_grad(theirs)
    assert abs(our_loss.item() - their_loss.item()) < 1e-5, (our_loss, their_loss)
    assert their_loss.item() != pytest.approx(F.softplus(torch.tensor(0.0)).item())  # margins ≠ 0
    torch.testing.assert_close(our_grad, their_grad, rtol=1e-4, atol=1e-6)


class Recorder:
    """A DPO loss that records every input it was given."""

    def __init__(self) -> None:
        self.calls: list[dict[str, torch.Tensor]] = []

    def __call__(self, **inputs: torch.Tensor) -> torch.Tensor:
        self.calls.append({k: v.detach().clone() for k, v in inputs.items()})
        margin = (inputs["policy_chosen_logps"] - inputs["ref_chosen_logps"]) - (
            inputs["policy_rejected_logps"] - inputs["ref_rejected_logps"]
        )
        return -F.logsigmoid(inputs["beta"] * margin)


@pytest.mark.parametrize("weights", [None, (0.25, 0.75)])
def test_two_references_reach_the_loss_as_k_by_b_and_combined(
    hf_files: HFFiles, tmp_path: Path, weights: tuple[float, float] | None
) -> None:
    recorder = Recorder()
    loss = Loss(
        "recorder",
        recorder,
        optional_inputs=frozenset(
            {"refs_chosen_logps", "refs_rejected_logps", "chosen_lengths", "rejected_lengths"}
        ),
    )
    tokenizer = load_tokenizer(str(hf_files.policy))
    trainer = CandidateDPOTrainer(
        loss=loss,
        ref_models=[
            load_causal_lm(str(hf_files.policy), role="reference 1"),
            load_causal_lm(str(hf_files.other_ref), role="reference 2"),
        ],
        ref_weights=weights,
        model=load_causal_lm(str(hf_files.policy), role="policy"),
        args=_args(hf_files, tmp_path, beta=0.1),
        train_dataset=Dataset.from_list(preference_rows(BATCH, seed=5)),
        processing_class=tokenizer,
    )
    batch = _first_batch(trainer)
    trainer.compute_loss(trainer.model, batch)
    (seen,) = recorder.calls
    refs_chosen, refs_rejected = seen["refs_chosen_logps"], seen["refs_rejected_logps"]
    assert refs_chosen.shape == refs_rejected.shape == (2, BATCH)
    assert not torch.allclose(refs_chosen[0], refs_chosen[1])  # two different models
    w = torch.tensor(weights or (0.5, 0.5))[:, None]  # (K, 1)
    torch.testing.assert_close(seen["ref_chosen_logps"], (w * refs_chosen).sum(0))
    torch.testing.assert_close(seen["ref_rejected_logps"], (w * refs_rejected).sum(0))
    # The first reference is the policy's own weights: its log-probs are the policy's, untrained.
    torch.testing.assert_close(refs_chosen[0], seen["policy_chosen_logps"], rtol=1e-5, atol=1e-4)
    # Lengths are the completion token counts (eos included), chosen rows then rejected rows.
    counts = batch["completion_mask"].sum(dim=1)  # (2B,)
    torch.testing.assert_close(seen["chosen_lengths"], counts[:BATCH])
    torch.testing.assert_close(seen["rejected_lengths"], counts[BATCH:])
