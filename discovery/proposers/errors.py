"""Errors raised by the proposers package.

    ProposerError        base class
    └── GenomeError      a stored genome (expression-tree JSON) that cannot be read back

A proposer never raises for a bad parent: it skips the parent and proposes from the others. These
errors surface only where a caller decodes genomes or builds trees itself.
"""


class ProposerError(Exception):
    """Something a proposer (or its expression language) refused."""


class GenomeError(ProposerError, ValueError):
    """An expression tree or genome that is malformed: unknown op, wrong arity, bad constant.

    The message names the offending part; a genome written by this package always decodes, so
    seeing this means the genome came from elsewhere or was edited by hand.
    """
