"""Proposers: the components that write candidate losses for the discovery engine.

    from discovery.proposers import EvolveConfig, EvolveProposer, ProposalContext

    proposer = EvolveProposer(EvolveConfig(), numpy.random.default_rng(seed))
    proposals = proposer.propose(context, n=8)  # {name, thought, code} + provenance

Every proposer implements the one-method `Proposer` protocol (base.py). `evolve` is the built-in,
offline default: a symbolic search over loss expressions (expr.py, the language; codegen.py, its
Python; evaluate.py and sanity.py, a torch screen; seeds.py, the baselines as trees;
operators.py, the variation operators; evolve.py, the proposer). The LLM proposers (`llm`, any
OpenAI-compatible endpoint; `hf-local`, a local Hugging Face model) are one class, llm.py, over
an `LLMClient` (client.py, hf_local.py), with prompts.py, replies.py, calls.py (retries, budget,
records), breaker.py, bandit.py, pricing.py, their spec sections in config.py and their builder
in wiring.py. Importing this package starts nothing and reads no environment.
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
from discovery.proposers.evolve import EvolveConfig, EvolveProposer, Operator
from discovery.proposers.llm import LLMProposer, LLMProposerConfig

__all__ = [
    "BudgetExhausted",
    "EvolveConfig",
    "EvolveProposer",
    "Failure",
    "GenomeError",
    "LLMCallError",
    "LLMProposer",
    "LLMProposerConfig",
    "Operator",
    "Parent",
    "Proposal",
    "ProposalContext",
    "Proposer",
    "ProposerConfigError",
    "ProposerError",
    "ProposerUnavailable",
]
