"""What an entry point names to run a campaign, beside discovery.runner: the wrapper that keeps
keys out of logs and reprs (`Secret`), and the refusal of a Ray cluster that cannot be joined
(`RayUnavailableError`, one sentence with the address and the fix).

Both come from the evaluator's public interface and import nothing heavy, so the CLI can name
them at start-up without paying for torch or Ray. It runs nothing: discovery.runner does.
"""

from __future__ import annotations

from evaluator import RayUnavailableError, Secret

__all__ = ["RayUnavailableError", "Secret"]
