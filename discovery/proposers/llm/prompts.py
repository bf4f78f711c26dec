"""What an LLM proposer sends: the system prompt, the user prompt built from the archive, repairs.

`system_prompt(stage_metric)` states the loss contract of DESIGN.md section 2 (signature, shapes,
the names in scope `torch`, `F`, `math`, the rules the sandbox enforces), the goal (beat DPO on the
campaign's first-stage metric) and the answer format. `user_prompt(context, n, budget_tokens=...)`
shows the best candidates with their score vs DPO and public metrics, a few diverse ones and the
recent rejections with their reasons, then asks for `n` candidates. It fits a token budget by
taking parts in order of usefulness (the best parent, the rejection reasons, the other parents,
the diverse ones, the rejected code) until one does not fit even in a shorter form (its code cut);
nothing less useful is taken after that. `repair_prompt` is the follow-up turn that shows
the model why its candidates were rejected.

The prompt is built only from the `ProposalContext`, whose metrics the engine restricts to public
tasks: nothing here can reach a held-out metric. Tokens are counted by the function passed in (a
real tokenizer for a local model; by default a conservative 3 characters a token). Nothing is sent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from discovery.proposers.base import Failure, Parent, ProposalContext
from discovery.proposers.llm.client import estimate_tokens

__all__ = ["PromptParts", "repair_prompt", "system_prompt", "user_prompt"]

_CODE_CHARS = 2400  # a parent's code beyond this is cut (with a note)
_SHORT_CODE_CHARS = 500  # the shorter form of a block that does not fit
_REASON_CHARS = 300  # a rejection reason beyond this is cut
_FAILED_CODE_CHARS = 600  # a rejected candidate's code beyond this is cut
_METRICS_SHOWN = 8  # per candidate; per-beta frontier points (names with "=") are left out

_SYSTEM = """\
You are a machine-learning researcher who designs loss functions for offline preference \
optimization of language models (the DPO family). Each loss you write is checked by a sandbox, \
then used to fine-tune small models; its score is measured against DPO under identical data, \
seeds and training steps.

THE LOSS CONTRACT
Write exactly one Python function and nothing else (no imports, no other top-level code):

def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    ...
    return losses  # one loss per example, shape (B,); the trainer takes their mean

- The four inputs are tensors of shape (B,): the summed log-probabilities of the chosen and of \
the rejected completion, under the policy being trained and under the frozen reference model.
- beta is the KL strength: a float (a 0-dim tensor when the loss is traced).
- Optional parameters, only if the loss uses them, after beta in this order: chosen_lengths, \
rejected_lengths, (B,) token counts of the completions (for length-normalised losses); \
refs_chosen_logps, refs_rejected_logps, (K, B) log-probabilities under K reference models.
- Names in scope, already imported: torch, F (torch.nn.functional) and math. Nothing else.

Rules (a candidate that breaks one is rejected, with the reason shown to you):
- Pure: no in-place operations on the inputs, no randomness, no global state, no printing.
- Traceable: no .item(), .tolist() or float() of a tensor, no Python if/while on tensor values \
(use torch.where), no loops.
- Finite values and gradients on realistic inputs (summed log-probabilities between -1000 and 0, \
the policy within tens of nats of the reference, beta from 0.01 to 10): prefer F.logsigmoid and \
F.softplus to log(sigmoid(x)), and keep exponents bounded.
- Batch statistics (mean, std over the batch) are allowed; an example's loss must not depend on \
its position in the batch.
- With margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - \
ref_rejected_logps), the loss must not rise as the margin rises: never reward the rejected answer.
- A loss that behaves exactly like one already tried (however it is written) is a duplicate and \
is not trained.

DPO, the baseline every score is measured against:

def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    return -F.logsigmoid(beta * margin)

THE GOAL
Find losses that score higher than DPO on {metric}. A score is the loss's {metric} minus DPO's \
under the same seed (DPO scores 0; higher is better). Learn from the scores and metrics of the \
candidates you are shown, and from the reasons earlier candidates were rejected.

ANSWER FORMAT
Reply with one JSON object and nothing else:
{{"candidates": [{{"thought": "the idea, and why it should beat DPO, in one or two sentences", \
"name": "a_short_snake_case_name", "code": "def loss(...):\\n    ..."}}]}}
"""


def system_prompt(stage_metric: str) -> str:
    """The contract, the rules, the goal (beat DPO on `stage_metric`) and the answer format."""
    return _SYSTEM.format(metric=stage_metric)


@dataclass(frozen=True)
class PromptParts:
    """A user prompt and what it showed."""

    text: str
    parent_ids: tuple[int, ...]  # parents whose code made it into the prompt, best first


@dataclass(frozen=True)
class _Block:
    priority: int  # lower goes in first when the budget is short
    section: int  # where it is shown: 0 best, 1 diverse, 2 rejections
    order: tuple[int, int]  # position inside its section
    text: str
    short: str | None = None  # a shorter form, tried when `text` does not fit
    parent_id: int | None = None


_SECTIONS = (
    "## The best candidates so far (score vs DPO, then public metrics)",
    "## Other candidates, for diversity",
    "## Recently rejected candidates: do not repeat these mistakes",
)


def user_prompt(
    context: ProposalContext,
    n: int,
    *,
    budget_tokens: int,
    count: Callable[[str], int] = estimate_tokens,
) -> PromptParts:
    """The request for `n` candidates, within `budget_tokens` as `count` measures them."""
    island = f" on island {context.island}" if context.island is not None else ""
    head = f"Propose {n} new loss function{'s' if n != 1 else ''} for this search{island}."
    if not context.parents and not context.inspirations:
        head += " Nothing has been scored yet: start from DPO and the ideas you think strongest."
    tail = (
        f"Write {n} candidate{'s' if n != 1 else ''} that differ from everything above and from "
        f'each other. Reply with the JSON object of the instructions, {n} in "candidates".'
    )
    blocks = _blocks(context)
    used = count(head) + count(tail) + 2
    chosen: list[_Block] = []
    opened: set[int] = set()
    for block in sorted(blocks, key=lambda b: (b.priority, b.section, b.order)):
        title = 0 if block.section in opened else count(_SECTIONS[block.section]) + 2
        fits = [
            (text, cost)
            for text in (block.text, block.short)
            if text is not None and used + (cost := title + count(text) + 1) <= budget_tokens
        ]
        if not fits:
            break  # strict order: nothing less useful goes in once this does not
        text, cost = fits[0]
        used += cost
        opened.add(block.section)
        chosen.append(dataclasses.replace(block, text=text))
    lines = [head]
    for section, title in enumerate(_SECTIONS):
        shown = sorted((b for b in chosen if b.section == section), key=lambda b: b.order)
        if shown:
            lines += ["", title, *(b.text for b in shown)]
    lines += ["", tail]
    parents = tuple(
        b.parent_id
        for b in sorted(chosen, key=lambda b: b.order)
        if b.section == 0 and b.parent_id is not None
    )
    return PromptParts("\n".join(lines), parents)


def repair_prompt(rejected: Sequence[tuple[str, str]]) -> str:
    """The follow-up turn: each (name, reason) rejected, and a request for corrected versions.

    A name of "" stands for a reply that held no readable candidate at all."""
    lines = ["These were rejected before any training:"]
    for name, reason in rejected:
        what = f"candidate {name!r}" if name else "your reply"
        lines.append(f"- {what}: {reason}")
    k = len(rejected)
    lines.append(
        f"Send {k} corrected candidate{'s' if k != 1 else ''}, one for each, keeping each idea and "
        'name where you can, as one JSON object {"candidates": [...]} in the same format.'
    )
    return "\n".join(lines)


# -- blocks ---------------------------------------------------------------------------------------


def _blocks(context: ProposalContext) -> list[_Block]:
    blocks: list[_Block] = []
    for rank, parent in enumerate(context.parents):
        # The best parent first, then the reasons for recent rejections, then the other parents.
        blocks.append(
            _Block(
                0 if rank == 0 else 2,
                0,
                (rank, 0),
                _parent(parent, _CODE_CHARS),
                _parent(parent, _SHORT_CODE_CHARS),
                parent.id,
            )
        )
    for index, parent in enumerate(context.inspirations):
        full, short = _parent(parent, _CODE_CHARS // 2), _parent(parent, _SHORT_CODE_CHARS)
        blocks.append(_Block(3, 1, (index, 0), full, short))
    for index, failure in enumerate(context.failures):
        blocks.append(_Block(1, 2, (index, 0), _failure_reason(failure)))
    for index, failure in enumerate(context.failures):
        if failure.code.strip():
            code = f"```python\n{_cut(failure.code, _FAILED_CODE_CHARS)}\n```"
            blocks.append(_Block(4, 2, (index, 1), code))
    return blocks


def _parent(parent: Parent, code_chars: int) -> str:
    score = "not scored yet" if parent.score is None else f"score {parent.score:+.4f} vs DPO"
    lines = [f"### {parent.name} ({score})"]
    shown = [(k, v) for k, v in parent.metrics.items() if "=" not in k][:_METRICS_SHOWN]
    if shown:
        lines.append("metrics: " + ", ".join(f"{k} {v:.4g}" for k, v in shown))
    lines.append(f"```python\n{_cut(parent.code, code_chars)}\n```")
    return "\n".join(lines)


def _failure_reason(failure: Failure) -> str:
    reason = " ".join(failure.reason.split()) or "no reason recorded"
    if len(reason) > _REASON_CHARS:
        reason = reason[: _REASON_CHARS - 3] + "..."
    return f"- {failure.name}: {reason}"


def _cut(code: str, limit: int) -> str:
    code = code.strip("\n")
    return code if len(code) <= limit else code[:limit] + "\n# ... (cut)"
