"""The LLM proposer: a model writes candidate losses from what the archive has learned.

`LLMProposer.propose(context, n)` picks a model (bandit.py), sends the system prompt and a user
prompt built from the context (prompts.py) through a `Caller` (calls.py: budget check, retries,
breaker, one `llm_calls` record per request), and reads the reply (replies.py). Each candidate is
checked at once by the sandbox passed in; for the rejected ones, and for a reply that held no
readable candidate, it sends up to `repair_attempts` follow-up turns in the same conversation that
show the model the reasons and ask for corrected versions. It returns every original (a rejected
one is stored REJECTED with its reason by the engine, which validates everything again: the
proposer is not trusted) followed by the repairs (operator "repair", their thought naming what
they repair). Unreadable replies come back as proposals with `rejection` set.

Failures: a call that fails after its retries gives an empty round (recorded, so the engine
still sees the spend); `ProposerUnavailable` (breaker open) and `BudgetExhausted` propagate from
the first call of a round. During repairs they end the repairs instead, so that the candidates in
hand are not lost: an endpoint that died then is reported at the start of the next round, and a
spent budget stops the next round's first call.

The same class serves `hf-local`: only the client differs (hf_local.py). It holds no secrets.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from discovery.proposers.base import Proposal, ProposalContext
from discovery.proposers.errors import BudgetExhausted, ProposerUnavailable
from discovery.proposers.llm.bandit import ModelBandit
from discovery.proposers.llm.calls import Caller, prompt_hash
from discovery.proposers.llm.client import Completion, Message, estimate_tokens
from discovery.proposers.llm.prompts import repair_prompt, system_prompt, user_prompt
from discovery.proposers.llm.replies import parse_reply
from sandbox import Candidate, Verdict

__all__ = ["LLMProposer", "LLMProposerConfig", "Validator"]

log = logging.getLogger(__name__)


class Validator(Protocol):
    """The sandbox, as the proposer uses it: one verdict per candidate."""

    def validate(self, candidate: Candidate) -> Verdict: ...


@dataclass(frozen=True)
class LLMProposerConfig:
    prompt_tokens: int = 6000  # budget of system + user prompt, as `count_tokens` measures it
    repair_attempts: int = 1  # follow-up turns with the sandbox's reasons (0: none)

    def __post_init__(self) -> None:
        if self.prompt_tokens < 1 or self.repair_attempts < 0:
            raise ValueError("LLMProposerConfig: prompt_tokens >= 1 and repair_attempts >= 0")


@dataclass(frozen=True)
class _Read:
    """One candidate read from a reply, with the reason it was rejected (None: accepted)."""

    proposal: Proposal
    reason: str | None


class LLMProposer:
    """Proposes losses written by a model; see the module docstring."""

    def __init__(
        self,
        *,
        name: str,
        config: LLMProposerConfig,
        caller: Caller,
        bandit: ModelBandit,
        validator: Validator | None,
        count_tokens: Callable[[str], int] = estimate_tokens,
    ) -> None:
        self.name = name  # the origin label: "llm" or "hf-local"
        self.config = config
        self.caller = caller
        self.bandit = bandit
        self.validator = validator
        self.count_tokens = count_tokens
        self._unavailable: ProposerUnavailable | None = None  # found during last round's repairs

    def propose(self, context: ProposalContext, n: int) -> list[Proposal]:
        if self._unavailable is not None:
            raise self._unavailable
        if n <= 0:
            return []
        model = self.bandit.choose()
        system = system_prompt(context.stage_metric)
        budget = self.config.prompt_tokens - self.count_tokens(system)
        parts = user_prompt(context, n, budget_tokens=budget, count=self.count_tokens)
        messages: list[Message] = [
            {"role": "system", "content": system},
            {"role": "user", "content": parts.text},
        ]
        spent_before = self.caller.spent

        def left() -> float | None:
            if context.dollars_left is None:
                return None
            return context.dollars_left - (self.caller.spent - spent_before)

        reply = self.caller.call(messages, model=model, purpose="propose", dollars_left=left())
        if reply is None:  # failed after its retries; recorded; the breaker is still closed
            self.bandit.update(
                model, accepted=0, rejected=1, dollars=self.caller.spent - spent_before
            )
            return []
        found = self._read(reply.text, n, model, messages, parts.parent_ids, fixing=None)
        everything = list(found)
        conversation = [*messages, {"role": "assistant", "content": reply.text}]
        for _ in range(self.config.repair_attempts):
            to_fix = [(r.proposal, r.reason) for r in found if r.reason is not None]
            if not to_fix:
                break
            shown = [(p.name if p.rejection is None else "", reason) for p, reason in to_fix]
            conversation.append({"role": "user", "content": repair_prompt(shown)})
            repair = self._repair_call(conversation, model, left())
            if repair is None:
                break
            conversation.append({"role": "assistant", "content": repair.text})
            found = self._read(
                repair.text, len(to_fix), model, conversation[:-1], parts.parent_ids, fixing=to_fix
            )
            everything += found
        accepted = sum(1 for r in everything if r.reason is None)
        self.bandit.update(
            model,
            accepted=accepted,
            rejected=len(everything) - accepted,
            dollars=self.caller.spent - spent_before,
        )
        log.info(
            "%s: %s wrote %d candidates, %d passed", self.name, model, len(everything), accepted
        )
        return [r.proposal for r in everything]

    # -- helpers -----------------------------------------------------------------------------

    def _repair_call(
        self, conversation: Sequence[Message], model: str, dollars_left: float | None
    ) -> Completion | None:
        try:
            return self.caller.call(
                conversation, model=model, purpose="repair", dollars_left=dollars_left
            )
        except BudgetExhausted as exc:
            log.info("%s: no repair turn: %s", self.name, exc)
        except ProposerUnavailable as exc:
            self._unavailable = exc  # keep this round's candidates; pause at the next one
        return None

    def _read(
        self,
        text: str,
        limit: int,
        model: str,
        sent: Sequence[Message],
        parent_ids: tuple[int, ...],
        *,
        fixing: list[tuple[Proposal, str]] | None,
    ) -> list[_Read]:
        """The reply's candidates, checked by the sandbox, and its problems, as proposals."""
        reply = parse_reply(text, limit=limit)
        sent_hash = prompt_hash(sent)
        operator = "write" if fixing is None else "repair"
        found = []
        for index, candidate in enumerate(reply.candidates):
            thought = candidate.thought
            if fixing is not None and index < len(fixing):
                original, reason = fixing[index]
                what = f"{original.name!r}" if original.rejection is None else "an unreadable reply"
                thought = f"Repair of {what}, rejected because: {reason} {thought}".strip()
            verdict = None if self.validator is None else self.validator.validate(candidate)
            proposal = Proposal(
                name=candidate.name,
                thought=thought,
                code=candidate.code,
                parent_ids=parent_ids,
                genome=None,
                origin=self.name,
                operator=operator,
                model=model,
                prompt_hash=sent_hash,
            )
            reason = None if verdict is None or verdict.accepted else verdict.reason
            found.append(_Read(proposal, reason))
        for problem in reply.problems:
            digest = hashlib.sha256(problem.excerpt.encode()).hexdigest()[:8]
            proposal = Proposal(
                name=f"{self.name}-unreadable-{digest}",
                thought=f"A reply from {model} that held no usable candidate.",
                code=problem.excerpt,
                parent_ids=parent_ids,
                genome=None,
                origin=self.name,
                operator=operator,
                model=model,
                prompt_hash=sent_hash,
                rejection=problem.reason,
            )
            found.append(_Read(proposal, problem.reason))
        return found
