"""Proposers: the components that write candidate losses for the discovery engine.

    from discovery.proposers.evolve.proposer import EvolveConfig, EvolveProposer

    proposer = EvolveProposer(EvolveConfig(), numpy.random.default_rng(seed))
    proposals = proposer.propose(context, n=8)  # {name, thought, code} + provenance

Every proposer implements the one-method `Proposer` protocol (base.py); errors.py holds the
errors the engine acts on. Two kinds:

    evolve/   the built-in, offline default: a symbolic search over loss expressions
    llm/      the LLM proposers (`llm`: any OpenAI-compatible endpoint; `hf-local`: a local Hugging
              Face model), one class over an `LLMClient`, with prompts, replies, calls and budgets

Importing this package starts nothing, reads no environment and imports no torch: it holds the
protocol and the errors; each kind is imported where it is used (the spec reads only the LLM
sections' config, `llm/config.py`).
"""

from discovery.proposers.base import Failure, Parent, Proposal, ProposalContext, Proposer
from discovery.proposers.errors import (
    BudgetExhausted,
    GenomeError,
    LLMCallError,
    ProposerConfigError,
    ProposerError,
    ProposerUnavailable,
)

__all__ = [
    "BudgetExhausted",
    "Failure",
    "GenomeError",
    "LLMCallError",
    "Parent",
    "Proposal",
    "ProposalContext",
    "Proposer",
    "ProposerConfigError",
    "ProposerError",
    "ProposerUnavailable",
]
