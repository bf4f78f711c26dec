"""Reading a candidate from a file named on the command line."""

from __future__ import annotations

from pathlib import Path

from sandbox import Candidate


def read_candidate(path: Path) -> Candidate | str:
    """A `.py` file is the loss code itself; anything else (JSON, a proposer's reply with a fenced
    block) goes to the sandbox's parser as text, which rejects it with a reason if it is neither."""
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix == ".py":
        return Candidate(name=path.stem, thought="", code=text)
    return text
