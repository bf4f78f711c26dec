"""A secret string that travels with a job but never shows itself in a repr, a log or an error.

Job configs are plain data sent to Ray workers; the hf stage's judge needs an API key there. Wrapped
in `Secret`, the key pickles like any value but prints as `Secret('***')`, so a job, its config
or a traceback that shows them does not leak it. Only the code that builds a client unwraps it
(`.value`). This module does not read the environment (the settings class does).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Secret:
    value: str = field(repr=False)

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__
