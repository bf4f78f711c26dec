"""Errors the evaluator raises to its callers (job failures are statuses, not exceptions).

- `RayUnavailableError`: the Ray cluster named by the settings cannot be joined (nothing answers
  at its address, or it refuses this client's token). Its message is one sentence naming the
  address and the fix; entry points print it as it is.

This module imports nothing heavy: a CLI catches these without loading Ray or torch.
"""

from __future__ import annotations


class RayUnavailableError(ConnectionError):
    """The Ray cluster at an address cannot be joined; the message says why and what to do."""
