"""Proposers: the components that write candidate losses for the discovery engine.

    from discovery.proposers import EvolveConfig, EvolveProposer, ProposalContext

    proposer = EvolveProposer(EvolveConfig(), numpy.random.default_rng(seed))
    proposals = proposer.propose(context, n=8)  # {name, thought, code} + provenance

Every proposer implements the one-method `Proposer` protocol (base.py). `evolve` is the built-in,
offline default: a symbolic search over loss expressions (expr.py, the language; codegen.py, its
Python; evaluate.py and sanity.py, a torch screen; seeds.py, the baselines as trees;
operators.py, the variation operators; evolve.py, the proposer). LLM proposers plug into the same
protocol. Importing this package starts nothing and reads no environment.
"""

from discovery.proposers.base import Failure, Parent, Proposal, ProposalContext, Proposer
from discovery.proposers.errors import GenomeError, ProposerError
from discovery.proposers.evolve import EvolveConfig, EvolveProposer, Operator

__all__ = [
    "EvolveConfig",
    "EvolveProposer",
    "Failure",
    "GenomeError",
    "Operator",
    "Parent",
    "Proposal",
    "ProposalContext",
    "Proposer",
    "ProposerError",
]
