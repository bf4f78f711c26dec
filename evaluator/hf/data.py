"""Preference data for the hf stage: load it, check it, and split it into train and held-out rows.

A source is one of (checked in this order):

- a `.jsonl` file, one JSON object per line with `prompt`, `chosen`, `rejected`;
- a local directory: one saved with `datasets`' `save_to_disk`, or a mirror of a hub dataset
  (data files that `datasets.load_dataset` reads from a directory);
- a hub name (`trl-lib/ultrafeedback_binarized`), read through `datasets.load_dataset`.

Rows are plain text (three strings) or conversational (lists of `{"role", "content"}` messages),
as TRL's DPOTrainer takes them. Conversational rows without a `prompt` column (chosen and rejected
are whole conversations, as in argilla/dpo-mix-7k) get their shared leading messages as the prompt.
Other columns are dropped.

Held-out rows are the same for every seed: the first rows of `eval_split`, or else the last rows
of the train split, set aside before train pairs are drawn; train pairs are drawn from the rest
with the run's seed. A source that is not there raises DatasetNotFoundError naming what was looked
for; rows of the wrong shape raise DatasetFormatError. Nothing here tokenizes or trains.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import datasets
import numpy as np

from evaluator.hf.config import HFConfig
from evaluator.hf.errors import DatasetFormatError, DatasetNotFoundError

Row = dict[str, Any]  # prompt, chosen, rejected: three strings, or three lists of messages
COLUMNS = ("prompt", "chosen", "rejected")
_OFFLINE_HINT = (
    "with HF_HUB_OFFLINE=1 or no network only what is already in the local Hugging Face cache "
    "loads: download it first, or give a local mirror (a directory or a .jsonl file)"
)


@dataclass(frozen=True)
class PreferenceData:
    """Train rows (drawn with the run seed) and held-out rows (fixed), in one format."""

    train: list[Row]
    heldout: list[Row]  # num_eval_pairs pairs first; their prompts also feed generation
    conversational: bool


def load_preferences(config: HFConfig, seed: int) -> PreferenceData:
    """Rows of `config.dataset`, split for one run with `seed`."""
    rows = _normalize(_read(config.dataset, config.dataset_split, config), config.dataset)
    n_heldout = max(config.num_eval_pairs, config.num_eval_prompts)
    if config.eval_split is not None:
        heldout = _normalize(_read(config.dataset, config.eval_split, config), config.dataset)
        pool = rows
    else:
        heldout, pool = rows[len(rows) - n_heldout :], rows[: len(rows) - n_heldout]
    if len(heldout) < n_heldout:
        raise DatasetFormatError(
            f"{config.dataset!r} has {len(heldout)} held-out rows; num_eval_pairs and "
            f"num_eval_prompts ask for {n_heldout}: lower them or use a larger split"
        )
    if len(pool) < config.num_train_pairs:
        where = "" if config.eval_split else f" after setting aside {n_heldout} held-out rows"
        raise DatasetFormatError(
            f"{config.dataset!r} has {len(pool)} train rows{where}; num_train_pairs asks for "
            f"{config.num_train_pairs}: lower it or use a larger dataset"
        )
    order = np.random.default_rng(seed).permutation(len(pool))[: config.num_train_pairs]
    conversational = _is_conversational(rows[0])
    if any(_is_conversational(r) != conversational for r in (*heldout, *rows)):
        raise DatasetFormatError(
            f"{config.dataset!r} mixes plain-text and conversational rows; use one format"
        )
    return PreferenceData(
        train=[pool[i] for i in order.tolist()],
        heldout=heldout[:n_heldout],
        conversational=conversational,
    )


def prompt_text(prompt: str | list[dict[str, str]]) -> str:
    """A prompt as plain text: itself, or a conversation as `role: content` lines."""
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m['role']}: {m['content']}" for m in prompt)


# -- reading ------------------------------------------------------------------------------------


def _read(source: str, split: str, config: HFConfig) -> list[Row]:
    path = Path(source).expanduser()
    if source.endswith((".jsonl", ".json")) or path.is_file():
        if split != config.dataset_split:
            raise DatasetFormatError(
                f"{source!r} is one file, one split: leave eval_split unset (held-out rows then "
                "come from its last rows) or give a dataset directory with splits"
            )
        return _read_jsonl(path, source)
    if path.is_dir():
        return _read_directory(path, split, config.dataset_config)
    if source.startswith(("/", "./", "../", "~")):
        raise DatasetNotFoundError(
            f"no preference dataset at {path} (dataset: {source!r}): no such file or directory"
        )
    return _read_hub(source, split, config.dataset_config)


def _read_jsonl(path: Path, source: str) -> list[Row]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DatasetNotFoundError(
            f"no preference file at {path} (dataset: {source!r}); write it (one JSON object "
            "per line with prompt, chosen, rejected) or fix the path"
        ) from None
    except OSError as exc:
        raise DatasetNotFoundError(f"cannot read {path}: {exc.strerror}") from None
    if path.suffix == ".json" and text.lstrip().startswith("["):
        return json.loads(text)
    rows = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise DatasetFormatError(f"{path}, line {number}: not JSON ({exc.msg})") from None
    return rows


def _read_directory(path: Path, split: str, config_name: str | None) -> list[Row]:
    if (path / "dataset_dict.json").exists() or (path / "state.json").exists():
        loaded = datasets.load_from_disk(str(path))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise DatasetFormatError(
                    f"the dataset at {path} has splits {sorted(loaded)}, not {split!r}; set "
                    "dataset_split (and eval_split) to one of them"
                )
            loaded = loaded[split]
        return list(loaded)
    try:
        return list(datasets.load_dataset(str(path), name=config_name, split=split))
    except (ValueError, FileNotFoundError) as exc:
        raise DatasetNotFoundError(
            f"no split {split!r} of a dataset in the directory {path}: {_first_line(exc)}"
        ) from None


def _read_hub(name: str, split: str, config_name: str | None) -> list[Row]:
    try:
        return list(datasets.load_dataset(name, name=config_name, split=split))
    except OSError as exc:  # not found, offline, unreachable (ConnectionError too)
        raise DatasetNotFoundError(
            f"preference dataset {name!r} (split {split!r}) is not a local file or directory and "
            f"could not be loaded from the Hugging Face hub ({_first_line(exc)}); {_OFFLINE_HINT}"
        ) from None
    except ValueError as exc:  # an unknown split or configuration
        raise DatasetFormatError(f"dataset {name!r}, split {split!r}: {_first_line(exc)}") from None


# -- checking -----------------------------------------------------------------------------------


def _normalize(rows: Sequence[Row], source: str) -> list[Row]:
    if not rows:
        raise DatasetFormatError(f"{source!r} has no rows")
    out = []
    for index, raw in enumerate(rows):
        if not isinstance(raw, dict):
            raise DatasetFormatError(f"{source!r}, row {index}: not an object")
        row = _split_prompt(raw) if "prompt" not in raw and _is_messages(raw.get("chosen")) else raw
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise DatasetFormatError(
                f"{source!r}, row {index}: missing {missing}; preference rows need prompt, "
                f"chosen and rejected (has {sorted(row)})"
            )
        kept = {c: row[c] for c in COLUMNS}
        plain = all(isinstance(v, str) for v in kept.values())
        if not plain and not all(_is_messages(v) for v in kept.values()):
            raise DatasetFormatError(
                f"{source!r}, row {index}: prompt, chosen and rejected must be three strings or "
                "three lists of {role, content} messages"
            )
        out.append(kept)
    return out


def _split_prompt(row: Row) -> Row:
    """Implicit prompt: the leading messages that chosen and rejected share."""
    chosen, rejected = row["chosen"], row.get("rejected")
    if not _is_messages(rejected):
        return row
    shared = 0
    while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
        shared += 1
    return {
        **row,
        "prompt": chosen[:shared],
        "chosen": chosen[shared:],
        "rejected": rejected[shared:],
    }


def _is_messages(value: object) -> bool:
    return (
        isinstance(value, list)
        and bool(value)
        and all(isinstance(m, dict) and "role" in m and "content" in m for m in value)
    )


def _is_conversational(row: Row) -> bool:
    return _is_messages(row["chosen"])


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0][:300] if lines else type(exc).__name__
