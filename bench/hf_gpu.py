"""The hf stage on one GPU: bf16 full fine-tuning and LoRA, DPO and LRML, models built locally.

    python bench/hf_gpu.py --out hf_gpu.json            # on a CUDA machine, ~2-3 minutes
    python bench/hf_gpu.py --tiny --out hf_gpu.json     # CPU smoke run of the same code, seconds

Builds everything without a download: a word-level tokenizer (`tokenizers`), a Llama policy of
about 200M parameters and a small Llama sequence classifier as reward model, both from configs
with seeded random weights, saved with `save_pretrained`; and a synthetic preference JSONL of a
few hundred pairs. Then runs `run_hf` (no Ray) four times: {full fine-tuning in bf16, LoRA on
bf16 weights} x {DPO, LRML}, each loss a graph rebuilt through the sandbox's `rebuild_graph` from
the registry's (trusted) source, as workers run candidates. Per run it reports the status, steps,
steps per second of the training loop, peak GPU memory (torch.cuda.max_memory_allocated), which
fraction of trainable (and frozen) tensors changed, and the metrics; per mode, LRML minus DPO on
the held-out implicit reward accuracy and the reward. Prints a line per run and writes the whole
as JSON to --out. The first run's steps per second include CUDA's warm-up.

Imports only evaluator.hf's chain (torch, transformers, TRL, datasets, peft, tokenizers, numpy,
and pydantic for the stage config) and the sandbox's graph code: not discovery/, api/, Ray,
SQLAlchemy, pydantic-settings or openai. Random
weights: the numbers check the machinery (speed, memory, bf16, LoRA), not loss quality.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

# This file is bench/hf_gpu.py: make the repository root importable.
_HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != _HERE]
sys.path.insert(0, str(_HERE.parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing here downloads; make sure of it

import argparse  # noqa: E402
import inspect  # noqa: E402
import json  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from dataclasses import asdict, dataclass  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
import transformers  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402
from tokenizers.models import WordLevel  # noqa: E402
from tokenizers.pre_tokenizers import WhitespaceSplit  # noqa: E402
from transformers import (  # noqa: E402
    LlamaConfig,
    LlamaForCausalLM,
    LlamaForSequenceClassification,
    PreTrainedTokenizerFast,
)

from evaluator.baselines import BASELINES  # noqa: E402
from evaluator.hf.config import HFConfig, LoraSettings  # noqa: E402
from evaluator.hf.stage import run_hf  # noqa: E402
from evaluator.losses import Loss  # noqa: E402
from sandbox import GraphLimits, rebuild_graph  # noqa: E402
from sandbox.graph_capture import capture_graph  # noqa: E402

SPECIALS = ("<pad>", "<eos>", "<unk>")
GOOD = [f"good{i}" for i in range(50)]  # chosen completions lean on these words


@dataclass(frozen=True)
class Size:
    """The shape of one benchmark: model, data and steps."""

    hidden: int
    layers: int
    heads: int
    vocab_words: int
    pairs: int  # train pairs
    eval_pairs: int
    eval_prompts: int
    prompt_words: int
    completion_words: int
    batch_size: int
    steps: int
    max_new_tokens: int


FULL = Size(
    hidden=1024,
    layers=14,
    heads=16,
    vocab_words=4000,
    pairs=384,
    eval_pairs=64,
    eval_prompts=64,
    prompt_words=48,
    completion_words=40,
    batch_size=16,
    steps=40,
    max_new_tokens=48,
)
TINY = Size(
    hidden=64,
    layers=2,
    heads=4,
    vocab_words=200,
    pairs=48,
    eval_pairs=16,
    eval_prompts=8,
    prompt_words=8,
    completion_words=6,
    batch_size=8,
    steps=4,
    max_new_tokens=8,
)


def build_tokenizer(size: Size) -> PreTrainedTokenizerFast:
    words = [*SPECIALS, *GOOD, *(f"w{i}" for i in range(size.vocab_words - len(GOOD)))]
    backend = Tokenizer(WordLevel({w: i for i, w in enumerate(words)}, unk_token="<unk>"))
    backend.pre_tokenizer = WhitespaceSplit()
    backend.add_special_tokens(list(SPECIALS))  # "w7<eos>" (TRL appends eos) splits in two
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )


def llama_config(size: Size, vocab: int, **extra: Any) -> LlamaConfig:
    return LlamaConfig(
        vocab_size=vocab,
        hidden_size=size.hidden,
        intermediate_size=int(size.hidden * 8 / 3) // 64 * 64 or 64,
        num_hidden_layers=size.layers,
        num_attention_heads=size.heads,
        num_key_value_heads=size.heads,
        max_position_embeddings=256,
        pad_token_id=0,
        eos_token_id=1,
        bos_token_id=1,
        **extra,
    )


def build_models(size: Size, root: Path) -> tuple[Path, Path, int]:
    """Policy and reward model directories (seeded random weights) and the policy's size."""
    tokenizer = build_tokenizer(size)
    vocab = len(tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        policy = LlamaForCausalLM(llama_config(size, vocab))
        torch.manual_seed(1)
        small = Size(**{**asdict(size), "hidden": 64, "layers": 2, "heads": 4})
        reward = LlamaForSequenceClassification(llama_config(small, vocab, num_labels=2))
    n_params = sum(p.numel() for p in policy.parameters())
    for model, name in ((policy, "policy"), (reward, "reward")):
        model.save_pretrained(root / name)
        tokenizer.save_pretrained(root / name)
    return root / "policy", root / "reward", n_params


def write_pairs(size: Size, path: Path) -> None:
    """Random-word prompts; chosen completions are half 'good' words, rejected ones have none."""
    rng = np.random.default_rng(0)
    plain = [f"w{i}" for i in range(size.vocab_words - len(GOOD))]
    n = size.pairs + max(size.eval_pairs, size.eval_prompts)
    with path.open("w", encoding="utf-8") as out:
        for _ in range(n):
            prompt = " ".join(rng.choice(plain, size.prompt_words))
            chosen = rng.choice(plain, size.completion_words)
            chosen[::2] = rng.choice(GOOD, len(chosen[::2]))
            rejected = rng.choice(plain, size.completion_words)
            row = {"prompt": prompt, "chosen": " " + " ".join(chosen)}
            row["rejected"] = " " + " ".join(rejected)
            out.write(json.dumps(row) + "\n")


def baseline_loss(name: str) -> Loss:
    """A registry baseline as workers get candidates: captured as a graph, rebuilt through the
    sandbox's op allow-list. The registry's source is the project's own (trusted) code."""
    namespace: dict[str, Any] = {"torch": torch, "F": F, "math": math, "__builtins__": {}}
    exec(compile(BASELINES[name].source, f"<baseline {name}>", "exec"), namespace)
    fn = namespace["loss"]
    graph = capture_graph(fn, tuple(inspect.signature(fn).parameters))
    rebuilt = rebuild_graph(json.dumps(graph), GraphLimits())
    return Loss(name=name, fn=rebuilt, optional_inputs=frozenset(rebuilt.optional_inputs))


def stage_config(size: Size, policy: Path, reward: Path, data: Path, *, lora: bool) -> HFConfig:
    return HFConfig(
        model=str(policy),
        dataset=str(data),
        reward_model=str(reward),
        num_train_pairs=size.pairs,
        num_eval_pairs=size.eval_pairs,
        num_eval_prompts=size.eval_prompts,
        max_new_tokens=size.max_new_tokens,
        max_length=size.prompt_words + size.completion_words + 8,
        per_device_train_batch_size=size.batch_size,
        per_device_eval_batch_size=2 * size.batch_size,
        max_steps=size.steps,
        learning_rate=1e-4 if lora else 1e-5,
        beta=0.1,
        bf16=None,  # the stage's own choice: on where the GPU supports it
        lora=LoraSettings(r=16, lora_alpha=32.0) if lora else None,
        dtype="bfloat16" if lora else "float32",
        max_seconds=600.0,
    )


def run_one(config: HFConfig, loss: Loss, mode: str) -> dict[str, Any]:
    cuda = torch.cuda.is_available()
    if cuda:
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    result = run_hf(loss, task="beta=0.1", seed=0, config=config)
    train_s = result.timings.get("train_s")
    return {
        "mode": mode,
        "loss": loss.name,
        "status": str(result.status),
        "reason": result.reason,
        "steps": result.steps,
        "steps_per_s": result.steps / train_s if train_s else None,
        "timings_s": result.timings,
        "seconds": result.seconds,
        "peak_gpu_mem_gb": torch.cuda.max_memory_allocated() / 2**30 if cuda else None,
        "params_changed": result.metrics.get("params/trained_changed"),
        "frozen_changed": result.metrics.get("params/frozen_changed"),
        "first_loss": result.losses[0] if result.losses else None,
        "last_loss": result.losses[-1] if result.losses else None,
        "metrics": result.metrics,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tiny", action="store_true", help="tiny model, a few steps (CPU ok)")
    parser.add_argument("--out", type=Path, help="write the results here as JSON")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    warnings.filterwarnings("ignore", category=FutureWarning)
    cuda = torch.cuda.is_available()
    if not cuda and not args.tiny:
        print(
            "CUDA is not available: this check needs a GPU. "
            "(`--tiny` runs the same code on the CPU as a smoke test.)",
            file=sys.stderr,
        )
        return 2
    size = TINY if args.tiny else FULL
    started = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="lossforge-hf-gpu-"))
    try:
        policy, reward, n_params = build_models(size, root)
        write_pairs(size, root / "pairs.jsonl")
        report: dict[str, Any] = {
            "device": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
            "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
            "versions": {
                "python": platform.python_version(),
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "trl": _version("trl"),
                "peft": _version("peft"),
                "datasets": _version("datasets"),
            },
            "size": asdict(size),
            "policy_params_m": n_params / 1e6,
            "setup_s": time.perf_counter() - started,
            "runs": [],
        }
        print(f"{report['device']}: policy {n_params / 1e6:.0f}M parameters", flush=True)
        losses = [baseline_loss("dpo"), baseline_loss("lrml")]
        for mode, lora in (("full-bf16", False), ("lora", True)):
            config = stage_config(size, policy, reward, root / "pairs.jsonl", lora=lora)
            for loss in losses:
                run = run_one(config, loss, mode)
                report["runs"].append(run)
                print(_line(run), flush=True)
        report["lrml_minus_dpo"] = _scores(report["runs"])
        report["total_s"] = time.perf_counter() - started
    finally:
        shutil.rmtree(root, ignore_errors=True)
    ok = all(r["status"] == "DONE" for r in report["runs"])
    print(f"{'all runs DONE' if ok else 'SOME RUNS FAILED'} in {report['total_s']:.0f} s")
    print(json.dumps(report))
    if args.out:
        args.out.write_text(json.dumps(report, indent=2), encoding="utf-8")
    return 0 if ok else 1


def _version(package: str) -> str | None:
    module = sys.modules.get(package)
    return getattr(module, "__version__", None)


def _line(run: dict[str, Any]) -> str:
    def fmt(value: Any, spec: str) -> str:
        return "-" if value is None else format(value, spec)

    metrics = run["metrics"]
    changed = f"{fmt(run['params_changed'], '.2f')} (frozen {fmt(run['frozen_changed'], '.2f')})"
    return (
        f"{run['mode']:>9} {run['loss']:>4}: {run['status']} {run['steps']} steps, "
        f"{fmt(run['steps_per_s'], '.2f')} steps/s, peak {fmt(run['peak_gpu_mem_gb'], '.2f')} GiB, "
        f"changed {changed}, "
        f"loss {fmt(run['first_loss'], '.4f')} -> {fmt(run['last_loss'], '.4f')}, "
        f"acc {fmt(metrics.get('rewards/accuracies'), '.3f')}, "
        f"kl {fmt(metrics.get('kl/ref'), '.3f')}, reward {fmt(metrics.get('reward/mean'), '.4f')}"
        + (f" ({run['reason']})" if run["reason"] else "")
    )


def _scores(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    out = {}
    for mode in {r["mode"] for r in runs}:
        by_loss = {r["loss"]: r["metrics"] for r in runs if r["mode"] == mode}
        dpo, lrml = by_loss.get("dpo", {}), by_loss.get("lrml", {})
        out[mode] = {
            k: lrml[k] - dpo[k]
            for k in ("rewards/accuracies", "reward/mean")
            if k in dpo and k in lrml
        }
    return out


if __name__ == "__main__":
    sys.exit(main())
