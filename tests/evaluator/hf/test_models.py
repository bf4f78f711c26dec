"""Loading models: local directories and hub names through from_pretrained; what is not there
is named, with what to do."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from evaluator.hf.errors import ModelNotFoundError
from evaluator.hf.models import load_causal_lm, load_reward_model, load_tokenizer
from tests.evaluator.hf.conftest import HFFiles


def test_local_directories_load(hf_files: HFFiles) -> None:
    policy = load_causal_lm(str(hf_files.policy), role="policy")
    assert not policy.training
    reward, tokenizer = load_reward_model(str(hf_files.reward))
    assert reward.config.num_labels == 2 and reward.config.pad_token_id == tokenizer.pad_token_id
    assert load_tokenizer(str(hf_files.policy)).pad_token == "<pad>"


def test_a_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=re.escape(f"policy '{tmp_path}/gone': no dir")):
        load_causal_lm(str(tmp_path / "gone"), role="policy")


def test_a_directory_without_a_model_says_so(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError) as error:
        load_causal_lm(str(tmp_path / "empty"), role="reference model 1")
    assert f"the directory {tmp_path}/empty holds no loadable reference model 1" in str(error.value)


def test_a_hub_name_that_cannot_be_fetched_says_why_and_what_to_do() -> None:
    with pytest.raises(ModelNotFoundError) as error:
        load_reward_model("someone/no-such-classifier")
    message = str(error.value)
    assert message.startswith("reward model 'someone/no-such-classifier': it is not a local dir")
    assert "HF_HUB_OFFLINE=1" in message and "local directory saved with save_pretrained" in message
