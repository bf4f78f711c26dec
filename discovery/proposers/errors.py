"""Errors raised by the proposers package.

    ProposerError            base class
    ├── GenomeError          a stored genome (expression-tree JSON) that cannot be read back
    ├── ProposerConfigError  an LLM proposer that cannot be built: no endpoint, no model, no price
    ├── LLMCallError         one request to a model failed (says whether a retry may help)
    ├── ProposerUnavailable  the model stays unreachable: the engine pauses the campaign
    └── BudgetExhausted      the next call could overspend the LLM-dollar budget: the engine stops

A proposer never raises for a bad parent or a bad reply: it skips the parent, and a reply it cannot
use becomes a rejected proposal with a reason. `LLMCallError` stays inside the package (the caller
retries or records it); only `ProposerUnavailable` and `BudgetExhausted` reach the engine. No
message ever contains an API key: the client redacts it before an error is built.
"""


class ProposerError(Exception):
    """Something a proposer (or its expression language) refused."""


class GenomeError(ProposerError, ValueError):
    """An expression tree or genome that is malformed: unknown op, wrong arity, bad constant.

    The message names the offending part; a genome written by this package always decodes, so
    seeing this means the genome came from elsewhere or was edited by hand.
    """


class ProposerConfigError(ProposerError, ValueError):
    """An LLM proposer whose settings are incomplete; the message names the setting to add."""


class LLMCallError(ProposerError):
    """One request to a model failed.

    `retryable` is True for what may pass on its own (HTTP 429 and 5xx, timeouts, dropped
    connections, a malformed response); `status` is the HTTP status when there was one, and
    `retry_after_s` the server's Retry-After. `adapted` means the client changed its request to suit
    the endpoint (it refused JSON mode or `max_tokens`): retry at once, it is not an outage.
    `config` marks faults that only a user can fix (a refused key, an unknown model, weights that
    cannot load): the campaign pauses at once instead of retrying.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        retry_after_s: float | None = None,
        adapted: bool = False,
        config: bool = False,
    ) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.status = status
        self.retry_after_s = retry_after_s
        self.adapted = adapted
        self.config = config


class ProposerUnavailable(ProposerError):  # noqa: N818 (a state the engine acts on, not a bug)
    """The model cannot be reached or refuses every request; retrying now will not help.

    The engine pauses the campaign with this message as the reason: fix the endpoint (or the
    settings the message names), then resume the campaign.
    """


class BudgetExhausted(ProposerError):  # noqa: N818 (a state the engine acts on, not a bug)
    """The next call's worst-case cost exceeds the LLM dollars left; the engine ends the campaign.

    Raise the campaign's `budget.llm_dollars` (or lower `proposer.llm.max_tokens`) and resume.
    """
