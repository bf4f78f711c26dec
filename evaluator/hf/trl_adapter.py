"""The one module that touches TRL internals: DPOTrainer with a contract loss as its loss.

`CandidateDPOTrainer` subclasses TRL 1.16's `DPOTrainer` and overrides:

- `_precompute_ref_logps`: reference log-probs are always precomputed (TRL's
  `precompute_ref_log_probs=True`), once per reference model. With K reference models each row
  gets `refs_chosen_logps`/`refs_rejected_logps` (K values) and `ref_chosen_logps`/
  `ref_rejected_logps` = sum_k w_k logp_k (DESIGN.md section 2, w_k = 1/K by default). Without
  reference models the policy's initial weights are the reference (the adapter disabled, with
  LoRA), as in TRL. Reference models visit the accelerator only while their pass runs.
- `_compute_loss`: the policy's summed completion log-probs come from TRL's fused LM head, exactly
  as TRL computes them; the candidate's `Loss` (its rebuilt graph) gets them with the precomputed
  reference log-probs, beta, completion lengths and the (K, B) references, and the mean of its
  per-example losses is the training loss. A non-finite loss raises NonFiniteError at that step;
  a loss of the wrong shape or without a gradient path raises ValueError.

It also holds the per-step losses and reward margins (the training curves the stage records: TRL's
`rewards/margins`, which `_log_rewards` computes for its logs anyway), a callback that stops at a
deadline and catches non-finite gradients, builds the DPOConfig from an HFConfig (one place for
TRL's argument names), and gives the policy's log-probs on the held-out pairs. It does not load
models or data, generate, or score.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import Dataset
from torch.utils.data import DataLoader
from transformers import PreTrainedModel, PrinterCallback, TrainerCallback
from trl import DPOConfig, DPOTrainer
from trl.trainer.dpo_trainer import DataCollatorForPreference
from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model

from evaluator.hf.config import HFConfig
from evaluator.hf.errors import NonFiniteError
from evaluator.losses import Loss, LossInputs
from evaluator.tinylm.trainer import output_problem

REFS_COLUMNS = ("refs_chosen_logps", "refs_rejected_logps")


def dpo_args(
    config: HFConfig, *, beta: float, seed: int, output_dir: Path, use_cpu: bool, bf16: bool
) -> DPOConfig:
    """TRL's DPOConfig for one run: the HFConfig's fields, reference log-probs precomputed,
    nothing saved, logged or reported."""
    checkpointing = (
        # transformers 5.2x renamed gradient_checkpointing (now a deprecated alias); older 5.x
        # releases know only the old name.
        "activation_checkpointing"
        if "activation_checkpointing" in {f.name for f in dataclasses.fields(DPOConfig)}
        else "gradient_checkpointing"
    )
    return DPOConfig(
        output_dir=str(output_dir),
        loss_type=["sigmoid"],  # unused: _compute_loss calls the candidate instead
        beta=beta,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=config.warmup_steps,
        weight_decay=config.weight_decay,
        max_length=config.max_length,
        per_device_train_batch_size=config.per_device_train_batch_size,
        per_device_eval_batch_size=config.per_device_eval_batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        max_steps=config.max_steps,
        num_train_epochs=config.num_train_epochs,
        max_grad_norm=config.max_grad_norm,
        bf16=bf16,
        fp16=False,
        use_cpu=use_cpu,
        seed=seed,
        data_seed=seed,
        precompute_ref_log_probs=True,
        precompute_ref_batch_size=config.per_device_eval_batch_size,
        disable_dropout=True,
        report_to="none",
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        **{checkpointing: config.gradient_checkpointing},
    )


@dataclass
class _PreferenceCollator(DataCollatorForPreference):
    """TRL's collator, plus the K references' log-probs as (K, B) tensors."""

    def torch_call(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = super().torch_call(examples)
        for column in REFS_COLUMNS:
            if column in examples[0]:
                batch[column] = torch.tensor([e[column] for e in examples]).T  # (K, B)
        return batch


class _Watch(TrainerCallback):
    """Per-step losses, the deadline, and non-finite gradients (checked after clipping, before the
    optimizer step, so non-finite values never reach the weights)."""

    def __init__(self, trainer: CandidateDPOTrainer, deadline: float | None) -> None:
        self.trainer = trainer
        self.deadline = deadline

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        grads = [p.grad for p in self.trainer.model.parameters() if p.grad is not None]
        if grads and not bool(torch.stack([g.isfinite().all() for g in grads]).all()):
            raise NonFiniteError(f"a gradient is non-finite at step {state.global_step + 1}")

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        micro, margins = self.trainer.micro_losses, self.trainer.micro_margins
        if micro:
            self.trainer.losses.append(sum(micro) / len(micro))
            self.trainer.margins.append(sum(margins) / len(margins))
            micro.clear()
            margins.clear()
        if self.deadline is not None and time.monotonic() > self.deadline:
            self.trainer.timed_out_at = state.global_step
            control.should_training_stop = True


class CandidateDPOTrainer(DPOTrainer):
    """DPOTrainer training with a contract loss; see the module docstring."""

    def __init__(
        self,
        *,
        loss: Loss,
        ref_models: Sequence[PreTrainedModel] = (),
        ref_weights: Sequence[float] | None = None,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> None:
        # Set before DPOTrainer.__init__, which precomputes the reference log-probs.
        self.candidate_loss = loss
        self.ref_models = list(ref_models)
        k = max(1, len(self.ref_models))
        self.ref_weights = torch.tensor(
            list(ref_weights) if ref_weights is not None else [1.0 / k] * k, dtype=torch.float64
        )  # (K,)
        self.micro_losses: list[float] = []  # losses of this step's micro-batches (training)
        self.losses: list[float] = []  # mean loss per optimizer step
        self.micro_margins: list[float] = []  # mean reward margin of this step's micro-batches
        self.margins: list[float] = []  # mean reward margin per optimizer step, as `losses`
        self.timed_out_at: int | None = None  # the step after which the deadline stopped training
        args = kwargs["args"]
        tokenizer = kwargs["processing_class"]
        kwargs.setdefault(
            "data_collator",
            _PreferenceCollator(
                pad_token_id=tokenizer.pad_token_id,
                max_length=args.max_length,
                truncation_mode=args.truncation_mode,
                pad_to_multiple_of=args.pad_to_multiple_of,
            ),
        )
        super().__init__(ref_model=None, **kwargs)
        self.remove_callback(PrinterCallback)  # it prints every log to stdout; we keep losses
        self.add_callback(_Watch(self, deadline))

    # -- reference log-probs -----------------------------------------------------------------

    def _set_signature_columns_if_needed(self) -> None:
        super()._set_signature_columns_if_needed()  # TRL's columns; others are dropped
        missing = [c for c in REFS_COLUMNS if c not in (self._signature_columns or [])]
        self._signature_columns = [*(self._signature_columns or []), *missing]

    def _precompute_ref_logps(self, dataset: Dataset, name: str, batch_size: int) -> Dataset:
        refs = self.ref_models or [None]  # None: the policy before training
        per_ref = [self._reference_pass(ref, dataset, batch_size) for ref in refs]
        chosen = torch.stack([c for c, _ in per_ref])  # (K, N)
        rejected = torch.stack([r for _, r in per_ref])  # (K, N)
        weights = self.ref_weights[:, None]  # (K, 1)
        dataset = dataset.add_column("ref_chosen_logps", (weights * chosen).sum(0).tolist())
        dataset = dataset.add_column("ref_rejected_logps", (weights * rejected).sum(0).tolist())
        dataset = dataset.add_column(REFS_COLUMNS[0], chosen.T.tolist())  # N rows of K
        return dataset.add_column(REFS_COLUMNS[1], rejected.T.tolist())

    @torch.no_grad()
    def _reference_pass(
        self, ref: PreTrainedModel | None, dataset: Dataset, batch_size: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed completion log-probs (N,), (N,) of every row under one reference, in float64."""
        device = self.accelerator.device
        if ref is not None:
            if not hasattr(ref, "_lossforge_fused"):
                add_fused_lm_head(ref)  # the same kernel as the policy's: identical numerics
                disable_dropout_in_model(ref)
                ref._lossforge_fused = True
            ref.to(device).eval()
        loader = DataLoader(dataset, batch_size=batch_size, collate_fn=self.data_collator)
        chosen, rejected = [], []
        try:
            for cpu_batch in loader:
                batch = {k: v.to(device) for k, v in cpu_batch.items()}
                # TRL's reference forward: `ref` itself, or with `None` the policy (its LoRA
                # adapter disabled when it has one).
                c, r = self.compute_ref_log_probs(ref if ref is not None else self.model, batch)
                chosen.append(c.double().cpu())
                rejected.append(r.double().cpu())
        finally:
            if ref is not None:
                ref.to("cpu")  # the accelerator holds one reference at a time, then none
        return torch.cat(chosen), torch.cat(rejected)

    # -- the loss ----------------------------------------------------------------------------

    def _compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool) -> Any:
        mode = "train" if self.model.training else "eval"
        chosen, rejected, lengths, outputs = self._policy_logps(model, inputs)
        chosen_lengths, rejected_lengths = lengths.chunk(2)  # (B,), (B,)
        device = chosen.device
        loss_inputs = LossInputs(
            policy_chosen_logps=chosen,
            policy_rejected_logps=rejected,
            ref_chosen_logps=inputs["ref_chosen_logps"].to(device, torch.float32),
            ref_rejected_logps=inputs["ref_rejected_logps"].to(device, torch.float32),
            beta=torch.tensor(self.beta, dtype=torch.float32, device=device),
            chosen_lengths=chosen_lengths,
            rejected_lengths=rejected_lengths,
            refs_chosen_logps=inputs[REFS_COLUMNS[0]].to(device, torch.float32),  # (K, B)
            refs_rejected_logps=inputs[REFS_COLUMNS[1]].to(device, torch.float32),
        )
        per_example = self.candidate_loss(loss_inputs)  # (B,)
        problem = output_problem(per_example, chosen.shape[0])
        if problem:
            raise ValueError(f"loss {self.candidate_loss.name!r}: {problem}")
        if not bool(torch.isfinite(per_example).all()):
            raise NonFiniteError(f"loss is non-finite at step {self.state.global_step + 1}")
        loss = per_example.mean()
        margin = self._log_rewards(mode, loss_inputs)
        if mode == "train":
            self.micro_losses.append(loss.item())
            self.micro_margins.append(margin)
        return (loss, outputs) if return_outputs else loss

    def _policy_logps(
        self, model: Any, inputs: dict[str, Any]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, Any]:
        """(chosen (B,), rejected (B,), completion lengths (2B,), model outputs), as TRL computes
        them: the batch is [chosen rows; rejected rows], labels are the completion tokens."""
        completion_mask = inputs["completion_mask"]  # (2B, T)
        labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
        outputs = model(
            input_ids=inputs["input_ids"],
            attention_mask=inputs["attention_mask"],
            labels=labels,
            use_cache=False,
            fused_lm_head=True,
        )
        shift_mask = completion_mask[:, 1:]  # (2B, T-1): position t scores token t+1
        per_token = outputs.log_probs[:, -shift_mask.size(1) :]  # (2B, T-1), 0 off completions
        chosen, rejected = per_token.sum(dim=1).float().chunk(2)  # (B,), (B,)
        return chosen, rejected, shift_mask.sum(dim=1), outputs

    def _log_rewards(self, mode: str, x: LossInputs) -> float:
        """TRL's reward metrics (its names), for its logs; returns the batch's mean margin."""
        chosen = (self.beta * (x.policy_chosen_logps - x.ref_chosen_logps)).detach()  # (B,)
        rejected = (self.beta * (x.policy_rejected_logps - x.ref_rejected_logps)).detach()
        metrics = self._metrics[mode]
        metrics["rewards/chosen"].append(chosen.mean().item())
        metrics["rewards/rejected"].append(rejected.mean().item())
        metrics["rewards/accuracies"].append((chosen > rejected).float().mean().item())
        margin = (chosen - rejected).mean().item()
        metrics["rewards/margins"].append(margin)
        return margin

    # -- held-out pairs ----------------------------------------------------------------------

    @torch.no_grad()
    def heldout_logps(self) -> dict[str, torch.Tensor]:
        """Policy and (combined) reference summed log-probs of the held-out pairs, (N,) each,
        tokenized, truncated and scored exactly as in training."""
        self.model.eval()
        loader = DataLoader(
            self.eval_dataset,
            batch_size=self.args.per_device_eval_batch_size,
            collate_fn=self.data_collator,
        )
        out: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("chosen", "rejected", "ref_chosen", "ref_rejected")
        }
        for cpu_batch in loader:
            batch = {k: v.to(self.accelerator.device) for k, v in cpu_batch.items()}
            with self.accelerator.autocast():
                chosen, rejected, _, _ = self._policy_logps(self.model, batch)
            out["chosen"].append(chosen.double().cpu())
            out["rejected"].append(rejected.double().cpu())
            out["ref_chosen"].append(batch["ref_chosen_logps"].double().cpu())
            out["ref_rejected"].append(batch["ref_rejected_logps"].double().cpu())
        return {k: torch.cat(v) for k, v in out.items()}
