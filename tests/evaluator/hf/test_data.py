"""Preference data: JSONL files and dataset directories, plain and conversational; held-out rows
fixed, train rows drawn by seed; what is missing or malformed is named."""

from __future__ import annotations

from pathlib import Path

import pytest
from datasets import Dataset, DatasetDict

from evaluator.hf.config import HFConfig
from evaluator.hf.data import load_preferences, prompt_text
from evaluator.hf.errors import DatasetFormatError, DatasetNotFoundError
from tests.evaluator.hf.conftest import HFFiles
from tests.evaluator.hf.local import preference_rows, write_jsonl


def _config(dataset: str | Path, **extra: object) -> HFConfig:
    return HFConfig(
        model="unused",
        dataset=str(dataset),
        num_train_pairs=32,
        num_eval_pairs=16,
        num_eval_prompts=8,
        per_device_train_batch_size=8,
        **extra,
    )


def test_jsonl_held_out_rows_are_fixed_and_train_rows_follow_the_seed(hf_files: HFFiles) -> None:
    a = load_preferences(_config(hf_files.plain), seed=0)
    b = load_preferences(_config(hf_files.plain), seed=1)
    assert len(a.train) == 32 and len(a.heldout) == 16 and not a.conversational
    assert a.heldout == b.heldout == preference_rows(96, seed=0)[-16:]
    assert a.train != b.train
    assert a.train == load_preferences(_config(hf_files.plain), seed=0).train
    before = preference_rows(96, seed=0)[:-16]
    assert all(r in before for r in a.train)  # train rows come from the rows before the held-out


def test_conversational_rows_and_implicit_prompts(hf_files: HFFiles, tmp_path: Path) -> None:
    data = load_preferences(_config(hf_files.conversational), seed=0)
    assert data.conversational
    assert data.train[0]["prompt"][0]["role"] == "user"
    # chosen / rejected as whole conversations (as argilla/dpo-mix-7k): the shared turns are
    # the prompt.
    whole = [
        {
            "chosen": r["prompt"] + r["chosen"],
            "rejected": r["prompt"] + r["rejected"],
            "source": "x",
        }
        for r in preference_rows(64, seed=2, conversational=True)
    ]
    implicit = load_preferences(_config(write_jsonl(tmp_path / "whole.jsonl", whole)), seed=0)
    explicit = preference_rows(64, seed=2, conversational=True)
    assert implicit.heldout == explicit[-16:]
    assert prompt_text(explicit[0]["prompt"]) == f"user: {explicit[0]['prompt'][0]['content']}"


def test_a_saved_dataset_directory_with_an_eval_split(tmp_path: Path) -> None:
    DatasetDict(
        {
            "train": Dataset.from_list(preference_rows(40, seed=0)),
            "test": Dataset.from_list(preference_rows(20, seed=1)),
        }
    ).save_to_disk(tmp_path / "mirror")
    data = load_preferences(_config(tmp_path / "mirror", eval_split="test"), seed=0)
    assert data.heldout == preference_rows(20, seed=1)[:16]
    assert len(data.train) == 32
    with pytest.raises(DatasetFormatError, match=r"splits \['test', 'train'\], not 'validation'"):
        load_preferences(_config(tmp_path / "mirror", eval_split="validation"), seed=0)


def test_a_directory_of_data_files_loads_through_datasets(tmp_path: Path) -> None:
    (tmp_path / "mirror").mkdir()
    write_jsonl(tmp_path / "mirror" / "train.jsonl", preference_rows(60, seed=0))
    data = load_preferences(_config(tmp_path / "mirror"), seed=0)
    assert data.heldout == preference_rows(60, seed=0)[-16:]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("/nowhere/prefs.jsonl", "no preference file at /nowhere/prefs.jsonl"),
        ("./nowhere", "no preference dataset at nowhere (dataset: './nowhere')"),
        ("someone/no-such-set", "preference dataset 'someone/no-such-set' (split 'train')"),
    ],
)
def test_a_dataset_that_is_not_there_is_named(source: str, message: str) -> None:
    with pytest.raises(DatasetNotFoundError) as error:
        load_preferences(_config(source), seed=0)
    assert message in str(error.value)
    if source.startswith("someone"):
        assert "HF_HUB_OFFLINE=1" in str(error.value)


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"prompt": "a", "chosen": "b"}] * 60, "missing ['rejected']"),
        ([{"prompt": "a", "chosen": 1, "rejected": "c"}] * 60, "three strings or three lists"),
        (preference_rows(30, seed=0), "has 14 train rows after setting aside 16 held-out rows"),
    ],
)
def test_malformed_or_small_data_says_what_is_wrong(
    tmp_path: Path, rows: list[dict], message: str
) -> None:
    with pytest.raises(DatasetFormatError) as error:
        load_preferences(_config(write_jsonl(tmp_path / "bad.jsonl", rows)), seed=0)
    assert message in str(error.value)


def test_a_line_that_is_not_json_is_named(tmp_path: Path) -> None:
    path = tmp_path / "broken.jsonl"
    path.write_text('{"prompt": "a", "chosen": "b", "rejected": "c"}\n{oops\n')
    with pytest.raises(DatasetFormatError, match=r"broken\.jsonl, line 2: not JSON"):
        load_preferences(_config(path), seed=0)
