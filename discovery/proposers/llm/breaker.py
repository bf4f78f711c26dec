"""A circuit breaker for a model endpoint: after N failed calls in a row, stop calling it.

A call here is one logical request with all its retries (calls.py). The breaker counts calls that
failed after their last retry; a successful call resets the count. When the count reaches the
threshold, or at once for a fault only a user can fix (a refused key, an unknown model), the
breaker opens and `check` raises `ProposerUnavailable` with what happened, so the engine pauses
the campaign with a status that says why instead of spinning on a dead endpoint or, as DiscoPOP's
loop did, carrying on with an old completion. An open breaker stays open for the life of the
proposer: resuming the campaign builds a new one.

It neither retries nor waits; it only counts and decides.
"""

from __future__ import annotations

from discovery.proposers.errors import ProposerUnavailable

__all__ = ["CircuitBreaker"]


class CircuitBreaker:
    """Opens after `threshold` failed calls in a row to `endpoint`."""

    def __init__(self, *, endpoint: str, threshold: int) -> None:
        if threshold < 1:
            raise ValueError("CircuitBreaker.threshold must be >= 1")
        self.endpoint = endpoint
        self.threshold = threshold
        self.failed_calls = 0  # in a row
        self.failed_attempts = 0  # requests of those calls
        self.reason: str | None = None  # why it opened; None while closed

    @property
    def open(self) -> bool:
        return self.reason is not None

    def success(self) -> None:
        self.failed_calls = self.failed_attempts = 0

    def failure(self, last_error: str, *, attempts: int, fatal: bool = False) -> None:
        """A call failed after `attempts` requests; `fatal` opens the breaker at once."""
        self.failed_calls += 1
        self.failed_attempts += attempts
        if fatal:
            self.reason = f"LLM endpoint {self.endpoint} cannot be used ({last_error}); fix that"
        elif self.failed_calls >= self.threshold:
            self.reason = (
                f"LLM endpoint {self.endpoint} unreachable or failing after "
                f"{self.failed_attempts} attempts in {self.failed_calls} calls in a row (last "
                f"error: {last_error}); check that it is up and serves the model"
            )

    def check(self) -> None:
        """Raise `ProposerUnavailable` if the breaker is open."""
        if self.reason is not None:
            raise ProposerUnavailable(self.reason)
