"""The text of an exported module (export.py fills it in): a `string.Template` whose `$name`
placeholders each receive escaped docstring text, a repr literal or the sandbox-checked loss
source. Kept apart because it is a page of Python source held as data."""

import string

# -- the module template ------------------------------------------------------------------------
# `$name` placeholders; every substituted value is escaped docstring text, a repr literal or the
# sandbox-checked loss source.

TEMPLATE = string.Template('''\
"""$docstring
"""

import functools
import hashlib
import math
import warnings

import torch
import torch.nn.functional as F

# -- the loss, as its proposer wrote it (checked by the lossforge sandbox) ---------------------


$loss


# -- what the lossforge archive recorded ----------------------------------------------------------

$provenance

$scores

# The parameters of `loss`, in contract order.
$inputs
FINGERPRINT = $fingerprint
FINGERPRINT_VERSION = $fingerprint_version
_ZERO_BELOW = $zero_below  # the fingerprint counts |x| below this as 0
_POLICY_INPUTS = ("policy_chosen_logps", "policy_rejected_logps")
_COLUMNS = ("losses", "grad_policy_chosen_logps", "grad_policy_rejected_logps")

# Three probe batches of eight pairs (the lossforge sandbox's fingerprint probes): the inputs
# `loss` takes (float64 values; beta a float; *_lengths ints; refs_* K rows of B), and what the
# sandbox's rebuilt graph of `loss` computed there in float64: per-example losses and the gradient
# of their sum w.r.t. each policy input. Non-finite numbers are written "nan", "inf", "-inf".
$probes


# -- self-check -------------------------------------------------------------------------------


def _tensor(name, value):
    dtype = torch.int64 if name.endswith("_lengths") else torch.float64
    return torch.tensor(value, dtype=dtype)


def _quantize(value):
    # The sandbox's rounding: 7 significant digits, tiny values as 0, names for non-finite ones.
    if not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if abs(value) < _ZERO_BELOW:
        return "0"
    return f"{value:.6e}"


def self_check(rtol=1e-6, atol=1e-9):
    """Run `loss` on PROBES in float64; raise AssertionError unless it reproduces the recorded
    losses and policy gradients (within rtol/atol), its gradients are the derivatives of its
    values (_check_gradients_follow_values), and their fingerprint hash is FINGERPRINT."""
    lines = [FINGERPRINT_VERSION]
    for index, probe in enumerate(PROBES):
        kwargs = {name: _tensor(name, value) for name, value in probe["inputs"].items()}
        leaves = [kwargs[name].requires_grad_(True) for name in _POLICY_INPUTS]
        with torch.enable_grad():
            losses = loss(**kwargs)
            size = leaves[0].shape[0]
            if not isinstance(losses, torch.Tensor) or tuple(losses.shape) != (size,):
                shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses)
                raise AssertionError(
                    f"probe batch {index}: loss returned {shape}, expected shape ({size},)"
                )
            grads = (None, None)
            if losses.requires_grad:
                grads = torch.autograd.grad(losses.sum(), leaves, allow_unused=True)
        pairs = zip(grads, leaves, strict=True)
        pc, pr = (torch.zeros_like(leaf) if g is None else g for g, leaf in pairs)
        got = {_COLUMNS[0]: losses.detach(), _COLUMNS[1]: pc, _COLUMNS[2]: pr}
        for column in _COLUMNS:
            actual = got[column].to(torch.float64)
            expected = torch.tensor([float(v) for v in probe[column]], dtype=torch.float64)
            close = torch.isclose(actual, expected, rtol=rtol, atol=atol, equal_nan=True)
            if not bool(close.all()):
                i = int((~close).nonzero()[0, 0])
                raise AssertionError(
                    f"probe batch {index} (beta={probe['inputs']['beta']}), example {i}: "
                    f"{column} is {actual[i].item()!r} but the archive recorded "
                    f"{expected[i].item()!r} (rtol={rtol}, atol={atol})"
                )
        _check_gradients_follow_values(index, probe, kwargs, (pc, pr))
        rows = torch.stack([got[c].to(torch.float64) for c in _COLUMNS], dim=1).tolist()
        lines.extend(" ".join(_quantize(v) for v in row) for row in rows)
    digest = hashlib.sha256("\\n".join(lines).encode()).hexdigest()[:32]
    if digest != FINGERPRINT:
        raise AssertionError(
            f"the values hash to fingerprint {digest}, the archive recorded {FINGERPRINT} "
            f"({FINGERPRINT_VERSION}); a value sits on a rounding boundary or the loss changed"
        )


_STEP = 1e-5  # finite-difference step on a summed log-prob (float64 resolves ~1e-13 at 300 nats)
_FD_RTOL, _FD_ATOL = 1e-3, 1e-6


def _check_gradients_follow_values(index, probe, kwargs, grads):
    # The recorded gradients come from the same graph as the recorded values, so a loss built to
    # show one function and train another (`shown.detach() + (trained - trained.detach())`)
    # reproduces both. Differentiate the values themselves: for each example and policy input,
    # d(sum of losses)/dx by central differences must match autograd; beside a kink (relu,
    # where) one of the one-sided differences does.
    if not all(bool(g.isfinite().all()) for g in grads):
        return  # non-finite gradients were compared with the record already
    base = {name: value.detach() for name, value in kwargs.items()}
    # ~100 calls on eight numbers each: torch's thread team would only add its start-up cost to
    # every op (seconds on a busy machine), so they run on one thread; the setting is restored.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with torch.no_grad():
            center = float(loss(**base).sum())
            if not math.isfinite(center):
                return  # non-finite values were compared with the record already
            for name, grad in zip(_POLICY_INPUTS, grads, strict=True):
                for i, g in enumerate(grad.tolist()):
                    up, down = (_moved_total(base, name, i, step) for step in (_STEP, -_STEP))
                    central = (up - down) / (2 * _STEP)
                    slopes = (central, (up - center) / _STEP, (center - down) / _STEP)
                    if not any(
                        abs(g - d) <= _FD_ATOL + _FD_RTOL * max(abs(g), abs(d)) for d in slopes
                    ):
                        raise AssertionError(
                            f"probe batch {index} (beta={probe['inputs']['beta']}), example {i}: "
                            f"the gradient w.r.t. {name} is {g!r} but the values change at "
                            f"{central!r} per nat there: `loss` trains along another function "
                            "than the one its values show (a detach or straight-through trick)"
                        )
    finally:
        torch.set_num_threads(threads)


def _moved_total(base, name, i, step):
    moved = base[name].clone()
    moved[i] += step
    return float(loss(**{**base, name: moved}).sum())


# -- TRL ------------------------------------------------------------------------------------------

_REFS_INPUTS = ("refs_chosen_logps", "refs_rejected_logps")
_NON_MODEL_KEYS = ("completion_mask", "ref_chosen_logps", "ref_rejected_logps")


@functools.cache
def dpo_trainer_class():
    """A trl.DPOTrainer subclass whose loss is `loss` (made on first call: trl is imported here).

    Built for TRL 1.16, whose per-batch loss hook is DPOTrainer._compute_loss. The policy's summed
    completion log-probs are computed as TRL computes them; the reference log-probs are TRL's
    (precomputed or from ref_model / the initial policy), or with ref_models=[...] those of K
    reference models, computed every step. The training loss is the mean of `loss`'s (B,) values;
    a non-finite loss, or a non-finite gradient of it w.r.t. the log-probs, stops training with
    FloatingPointError.
    """
    import trl  # noqa: PLC0415 (lazy: the loss and the self-check need only torch)
    from trl import DPOTrainer  # noqa: PLC0415
    from trl.trainer.utils import add_fused_lm_head, disable_dropout_in_model  # noqa: PLC0415

    if not trl.__version__.startswith("1.16."):
        warnings.warn(
            f"this trainer was written for trl 1.16 and uses its DPOTrainer._compute_loss hook; "
            f"trl {trl.__version__} is installed: check the losses it logs",
            stacklevel=2,
        )

    def _finite_gradient_guard(step):
        # A hook on the (2B,) summed log-probs: it sees d(loss)/d(log-prob), the one gradient
        # `loss` sends into the model, during the backward pass that computes it (no second
        # backward, nothing retained), for one isfinite over 2B numbers and one sync per step.
        # A finite loss can still have a NaN or infinite derivative (sqrt or log at 0, a pow of
        # a negative base); without this check it would reach the weights silently. Under fp16
        # loss scaling the log-probs are float32 and the scale is finite, so an overflow here
        # is the loss's, never the scaler's.
        def guard(grad):
            bad = ~torch.isfinite(grad)
            if bool(bad.any()):
                raise FloatingPointError(
                    f"the gradient of the loss w.r.t. the policy's log-probs is non-finite at "
                    f"step {step} ({int(bad.sum())} of {grad.numel()} sequences) although the "
                    "loss is finite; `loss` has a NaN or infinite derivative there: fix it "
                    "(clamp before sqrt, log or pow) before training with it"
                )
            return grad

        return guard

    class ExportedLossDPOTrainer(DPOTrainer):
        """DPOTrainer training with this module's `loss`; see dpo_trainer_class()."""

        def __init__(self, model, *, ref_models=(), ref_weights=None, **kwargs):
            ref_models = list(ref_models)
            if any(name in INPUTS for name in _REFS_INPUTS) and not ref_models:
                raise ValueError(
                    "this loss takes refs_chosen_logps/refs_rejected_logps (K reference "
                    "models): pass ref_models=[primary_ref, other_ref, ...]"
                )
            args = kwargs.get("args")
            if getattr(args, "ld_alpha", None) is not None:
                raise ValueError("ld_alpha is not supported: `loss` gets summed log-probs")
            if ref_models:
                if kwargs.get("ref_model") is not None:
                    raise ValueError("pass ref_models or ref_model, not both")
                if getattr(args, "precompute_ref_log_probs", False):
                    raise ValueError(
                        "with ref_models the reference log-probs are computed every step; "
                        "set precompute_ref_log_probs=False"
                    )
                kwargs["ref_model"] = ref_models[0]  # TRL prepares it like any ref_model
            k = max(1, len(ref_models))
            weights = [1.0 / k] * k if ref_weights is None else [float(w) for w in ref_weights]
            if len(weights) != k:
                raise ValueError(f"ref_weights has {len(weights)} entries for {k} references")
            super().__init__(model, **kwargs)
            self.ref_weights = torch.tensor(weights, dtype=torch.float32)  # (K,)
            self.other_refs = []  # references 2..K; the first is self.ref_model
            for ref in ref_models[1:]:
                add_fused_lm_head(ref)
                if self.args.disable_dropout:
                    disable_dropout_in_model(ref)
                self.other_refs.append(self.accelerator.prepare_model(ref, evaluation_mode=True))
            self.multi_reference = bool(ref_models)

        def _reference_logps(self, inputs):
            """(ref chosen (B,), ref rejected (B,), refs chosen (K, B) or None, same rejected)."""
            if self.multi_reference:
                per_ref = [
                    self.compute_ref_log_probs(ref, inputs)
                    for ref in [self.ref_model, *self.other_refs]
                ]
                chosen = torch.stack([c.float() for c, _ in per_ref])  # (K, B)
                rejected = torch.stack([r.float() for _, r in per_ref])  # (K, B)
                w = self.ref_weights.to(chosen.device)[:, None]  # (K, 1)
                return (w * chosen).sum(0), (w * rejected).sum(0), chosen, rejected
            if self.precompute_ref_logps:
                return inputs["ref_chosen_logps"], inputs["ref_rejected_logps"], None, None
            ref = self.ref_model if self.ref_model is not None else self.model  # PEFT: adapter off
            chosen, rejected = self.compute_ref_log_probs(ref, inputs)
            return chosen, rejected, None, None

        def _compute_loss(self, model, inputs, return_outputs):
            mode = "train" if self.model.training else "eval"
            completion_mask = inputs["completion_mask"]  # (2B, T); batch is [chosen; rejected]
            shift_mask = completion_mask[:, 1:]  # (2B, T-1): position t scores token t+1
            labels = inputs["input_ids"].masked_fill(completion_mask == 0, -100)
            model_kwargs = {k: v for k, v in inputs.items() if k not in _NON_MODEL_KEYS}
            outputs = model(**model_kwargs, labels=labels, use_cache=False, fused_lm_head=True)
            per_token = outputs.log_probs[:, -shift_mask.size(1) :]  # (2B, T-1), 0 elsewhere
            summed = per_token.sum(dim=1).float()  # (2B,)
            if summed.requires_grad:  # training, not evaluation
                summed.register_hook(_finite_gradient_guard(self.state.global_step + 1))
            chosen, rejected = summed.chunk(2)  # (B,), (B,)
            device = chosen.device
            ref_chosen, ref_rejected, refs_chosen, refs_rejected = self._reference_logps(inputs)
            chosen_lengths, rejected_lengths = shift_mask.sum(dim=1).chunk(2)  # (B,) token counts
            available = {
                "policy_chosen_logps": chosen,
                "policy_rejected_logps": rejected,
                "ref_chosen_logps": ref_chosen.to(device, torch.float32),
                "ref_rejected_logps": ref_rejected.to(device, torch.float32),
                "beta": torch.tensor(self.beta, dtype=torch.float32, device=device),
                "chosen_lengths": chosen_lengths,
                "rejected_lengths": rejected_lengths,
                "refs_chosen_logps": refs_chosen,  # (K, B)
                "refs_rejected_logps": refs_rejected,
            }
            per_example = loss(**{name: available[name] for name in INPUTS})  # (B,)
            if per_example.shape != chosen.shape:
                got, want = tuple(per_example.shape), tuple(chosen.shape)
                raise ValueError(f"loss returned shape {got}, expected {want}")
            if not bool(torch.isfinite(per_example).all()):
                raise FloatingPointError(
                    f"the loss is non-finite at step {self.state.global_step + 1}"
                )
            total = per_example.mean()
            # TRL's reward metrics, under its names
            chosen_rewards = (self.beta * (chosen - available["ref_chosen_logps"])).detach()
            rejected_rewards = (self.beta * (rejected - available["ref_rejected_logps"])).detach()
            metrics = self._metrics[mode]
            metrics["rewards/chosen"].append(chosen_rewards.mean().item())
            metrics["rewards/rejected"].append(rejected_rewards.mean().item())
            accuracy = (chosen_rewards > rejected_rewards).float().mean().item()
            metrics["rewards/accuracies"].append(accuracy)
            metrics["rewards/margins"].append((chosen_rewards - rejected_rewards).mean().item())
            return (total, outputs) if return_outputs else total

    return ExportedLossDPOTrainer


if __name__ == "__main__":
    self_check()
    print("ok")
''')
