"""The reference: trained once, cached by content hash, loaded back bit for bit."""

from __future__ import annotations

import itertools
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from evaluator.tinylm.reference import (
    SFTConfig,
    cache_key,
    code_digest,
    load_reference,
    lr_at,
)
from evaluator.tinylm.stage import TASKS, TinyLMConfig
from tests.evaluator.configs import with_fields


def test_second_call_loads_the_cached_weights(tinylm_config: TinyLMConfig, tmp_path: Path) -> None:
    # A cache of its own: the session cache may already hold this reference.
    kwargs = {"model_config": tinylm_config.model, "sft_config": tinylm_config.sft}
    trained = load_reference(TASKS["arithmetic"], cache_dir=tmp_path, **kwargs)
    assert not trained.from_cache  # the cache started empty
    assert trained.path.is_file()
    assert trained.path.parent == tmp_path
    loaded = load_reference(TASKS["arithmetic"], cache_dir=tmp_path, **kwargs)
    assert loaded.from_cache
    assert loaded.path == trained.path
    want, got = trained.model.state_dict(), loaded.model.state_dict()
    assert want.keys() == got.keys()
    assert all(torch.equal(want[k], got[k]) for k in want)
    assert not any(p.requires_grad for p in loaded.model.parameters())


def test_cache_key_covers_task_model_sft_and_seed() -> None:
    task, config = TASKS["sorting"], TinyLMConfig()
    key = cache_key(task, config.model, config.sft)
    assert key == cache_key(task, config.model, config.sft)
    assert key != cache_key(TASKS["arithmetic"], config.model, config.sft)
    assert key != cache_key(replace(task, p_correct=0.5), config.model, config.sft)
    assert key != cache_key(task, with_fields(config.model, n_layer=3), config.sft)
    assert key != cache_key(task, config.model, with_fields(config.sft, max_steps=10))
    assert key != cache_key(task, config.model, with_fields(config.sft, seed=1))


def test_cache_key_covers_the_code_that_builds_references(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A task family in a module of its own: editing that module (or the builders) must name a
    # new file, not load a reference built by the old code.
    module = tmp_path / "my_tasks.py"
    module.write_text(
        "from dataclasses import dataclass\n"
        "from evaluator.tinylm.tasks import Sorting\n\n"
        "@dataclass(frozen=True)\nclass MySorting(Sorting):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from my_tasks import MySorting  # made by this test

    config = TinyLMConfig()
    before = cache_key(MySorting(), config.model, config.sft)
    module.write_text(module.read_text() + "# the demonstrator changed\n")
    code_digest.cache_clear()  # a new process would read the files again
    after = cache_key(MySorting(), config.model, config.sft)
    assert before != after
    assert after == cache_key(MySorting(), config.model, config.sft)


def test_learning_rate_schedule_warms_up_then_decays() -> None:
    config = SFTConfig(learning_rate=1.0, max_steps=100, warmup_steps=10)
    rates = [lr_at(step, config) for step in range(100)]
    assert rates[0] == 0.1 and rates[9] == 1.0
    assert all(a >= b for a, b in itertools.pairwise(rates[9:]))
    assert rates[-1] >= 0.1


def test_cache_key_content_is_what_the_dataclass_configs_gave() -> None:
    # The reference cache is keyed on these dicts: the pydantic configs dump exactly what
    # `dataclasses.asdict` gave before them, so the same settings name the same content.
    config = TinyLMConfig()
    assert config.model.model_dump() == {
        "arch": "gpt2",
        "n_layer": 2,
        "n_head": 4,
        "n_embd": 64,
        "n_positions": 32,
    }
    assert config.sft.model_dump() == {
        "learning_rate": 3e-3,
        "max_steps": 800,
        "per_device_train_batch_size": 64,
        "warmup_steps": 50,
        "num_demonstrations": 8192,
        "seed": 0,
    }
    assert [type(v) for v in config.sft.model_dump().values()] == [float, int, int, int, int, int]
