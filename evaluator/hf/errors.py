"""Why an hf run could not start or go on, as exceptions with messages that say what to do.

    HFStageError                  base of everything below
    ├── ModelNotFoundError        a policy, reference, reward model or tokenizer is not there
    ├── DatasetNotFoundError      the preference dataset is not there
    ├── DatasetFormatError        the dataset is there but is not prompt/chosen/rejected data
    ├── JudgeError                the judge endpoint answered none of the comparisons
    └── NonFiniteError            the loss or a gradient went non-finite during training

`run_hf` turns each into a failed `RunResult` whose reason is the message (NonFiniteError into
NAN_LOSS, the others into ERROR): a missing model costs one evaluation, never the campaign.

`HFConfigError` is `evaluator.config_base.StageConfigError` under its older name (a config field
that is invalid, `.field` naming it, dotted: "lora.r"): configs are parsed before a run starts, by
the one validator every stage shares. This module only defines the exceptions.
"""

from __future__ import annotations

from evaluator.config_base import StageConfigError

# The same class: `except HFConfigError` catches every stage config error.
HFConfigError = StageConfigError


class HFStageError(Exception):
    """Base of the hf stage's errors."""


class ModelNotFoundError(HFStageError):
    """A model or tokenizer that could not be loaded from the name or directory given."""


class DatasetNotFoundError(HFStageError):
    """A preference dataset that could not be loaded from the name, directory or file given."""


class DatasetFormatError(HFStageError):
    """A dataset without the prompt/chosen/rejected columns, or with too few rows."""


class JudgeError(HFStageError):
    """The judge endpoint gave no usable verdict at all (every call failed)."""


class NonFiniteError(HFStageError):
    """The loss or a gradient became NaN or infinite at some step."""
