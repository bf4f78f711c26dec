"""Fixtures of the tinylm tests: one cache of references per session, one CPU thread.

References are trained once per session (a few seconds each) into a session temporary directory
and shared by every test; runs use one thread, as an evaluator worker does.
"""

from __future__ import annotations

import os
from pathlib import Path

# Nothing in these tests may download: set before transformers / huggingface_hub read it.
os.environ["HF_HUB_OFFLINE"] = "1"

from collections.abc import Callable, Iterator

import pytest
import torch

from evaluator.tinylm.reference import Reference, load_reference
from evaluator.tinylm.stage import TASKS, TinyLMConfig


@pytest.fixture(scope="package", autouse=True)
def one_thread() -> Iterator[None]:
    """Single-threaded torch for this package's tests, restored after them (bit-for-bit results
    depend on the thread count)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tinylm_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session's reference cache directory (a worker value, not a config field)."""
    return tmp_path_factory.mktemp("tinylm-cache")


@pytest.fixture(scope="session")
def tinylm_config() -> TinyLMConfig:
    """The stage's default settings."""
    return TinyLMConfig()


@pytest.fixture(scope="session")
def reference(tinylm_config: TinyLMConfig, tinylm_cache: Path) -> Callable[[str], Reference]:
    """reference(task) -> that task's reference, trained on first use in this session."""
    loaded: dict[str, Reference] = {}

    def get(task: str) -> Reference:
        if task not in loaded:
            loaded[task] = load_reference(
                TASKS[task],
                model_config=tinylm_config.model,
                sft_config=tinylm_config.sft,
                cache_dir=tinylm_cache,
            )
        return loaded[task]

    return get
