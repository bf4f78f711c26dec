"""Export one archived loss as a standalone Python module (DESIGN.md section 7).

`export_module(archive, candidate_id)` returns the text of a module that needs only torch to
import and holds:

- a docstring with the candidate's provenance (campaign, proposer, parents, thought, status),
  its scores vs DPO (stage, spread, seeds, held-out) and the lossforge version;
- the loss function exactly as its proposer wrote it (`loss`, plus a descriptive alias);
- the probe set the sandbox fingerprinted it on, the per-example losses and policy gradients its
  rebuilt graph computes there, and the fingerprint; `self_check()` reruns the readable function
  on those inputs in float64 and compares values, gradients and the fingerprint hash, and checks
  that its gradients are the derivatives of its values (finite differences), which no record
  can vouch for when the recorded graph itself has a detach trick;
- `dpo_trainer_class()`: a TRL 1.16 `DPOTrainer` subclass (created on first call, so importing
  the module does not need TRL) whose `_compute_loss` calls `loss` and stops on a non-finite loss
  or a non-finite gradient w.r.t. the log-probs.

Trust: the expected values come from the candidate's stored graph, rebuilt against the sandbox's
op allow-list; this process never runs candidate source. The source is only parsed (it passed the
sandbox's static checks when it was archived, and is checked again here) and pasted verbatim.
Everything else that came from a proposer (name, thought, provenance) enters the module as
escaped docstring text or as `repr` literals, never as code.

It does not write files or serve HTTP (the CLI and the API do), and exports only accepted losses:
REJECTED, DUPLICATE (the original is named) and not-yet-validated candidates raise ExportError.
"""

from __future__ import annotations

import ast
import importlib.metadata
import keyword
import math
import re
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from discovery.archive import Archive, CandidateRecord, CandidateStatus, NotFoundError
from discovery.scores import LeaderboardRow
from discovery.service.export_template import TEMPLATE
from discovery.service.leaderboard import campaign_leaderboard
from sandbox import static
from sandbox.contract import REQUIRED_INPUTS
from sandbox.errors import GraphRejectedError
from sandbox.fingerprint import FINGERPRINT_VERSION, ZERO_BELOW, ProbeValues, digest, probe_values
from sandbox.graph import LossGraph, rebuild_graph

__all__ = ["ExportError", "ExportedModule", "export_module"]

_WIDTH = 96  # wrap docstring text and data literals here (the project's ruff limit is 100)
_EXPORTABLE = (
    CandidateStatus.ACCEPTED,
    CandidateStatus.EVALUATED,
    CandidateStatus.FAILED,
    CandidateStatus.UNSCORED,  # a valid loss whose score is missing through no fault of its own
)
# Top-level names the generated module defines itself; the loss function may not take one.
_MODULE_NAMES = frozenset(
    {
        "functools", "hashlib", "math", "warnings", "torch", "F", "PROVENANCE", "SCORES",
        "INPUTS", "FINGERPRINT", "FINGERPRINT_VERSION", "PROBES", "self_check",
        "dpo_trainer_class", "loss",
    }
)  # fmt: skip


class ExportError(ValueError):
    """A candidate that cannot be exported; the message says why and what to export instead."""


@dataclass(frozen=True)
class ExportedModule:
    filename: str  # suggested file name, a valid module name: lossforge_<name>_<id>.py
    text: str  # the module's source (UTF-8 when written)


def export_module(archive: Archive, candidate_id: int) -> ExportedModule:
    """The standalone module of one candidate; NotFoundError for an unknown id, ExportError for a
    candidate that has no validated loss (rejected, duplicate, not validated yet)."""
    candidate = archive.get_candidate(candidate_id)
    graph = _exportable_graph(archive, candidate)
    function_name = _checked_function(candidate, graph)
    values = probe_values(graph)
    computed = digest(values)
    if computed != candidate.fingerprint:
        raise ExportError(
            f"candidate {candidate.id}'s stored graph now fingerprints as {computed}, not as the "
            f"archived {candidate.fingerprint} (the sandbox's fingerprint scheme is "
            f"{FINGERPRINT_VERSION}); validate the loss again with `lossforge validate` before "
            "exporting it"
        )
    row = next(
        (r for r in campaign_leaderboard(archive, candidate.campaign_id) if r.id == candidate.id),
        None,
    )
    filename = f"lossforge_{_slug(candidate.name) or 'loss'}_{candidate.id}.py"
    text = _render(
        archive=archive,
        candidate=candidate,
        function_name=function_name,
        inputs=graph.input_names,
        values=values,
        row=row,
        module_name=filename.removesuffix(".py"),
    )
    try:
        compile(ast.parse(text, filename), filename, "exec", dont_inherit=True)  # parse only
    except (SyntaxError, ValueError) as exc:  # a bug here, not in the candidate
        raise ExportError(
            f"the generated module for candidate {candidate.id} is invalid: {exc}"
        ) from exc
    return ExportedModule(filename=filename, text=text)


# -- what may be exported ---------------------------------------------------------------------


def _exportable_graph(archive: Archive, candidate: CandidateRecord) -> LossGraph:
    """The candidate's rebuilt graph, or ExportError saying why there is none to export."""
    label = f"candidate {candidate.id} ({candidate.name})"
    if candidate.status is CandidateStatus.DUPLICATE:
        original = candidate.duplicate_of
        name = _name_of(archive, original) if original is not None else None
        target = f"candidate {original} ({name})" if original is not None else "the original"
        raise ExportError(
            f"{label} is a duplicate of {target}: it computes the same loss; export {target} "
            "instead"
        )
    if candidate.status is CandidateStatus.REJECTED:
        raise ExportError(
            f"{label} was rejected by the sandbox ({candidate.reason or 'no reason recorded'}); "
            "only accepted losses can be exported"
        )
    if candidate.status not in _EXPORTABLE:
        raise ExportError(
            f"{label} is {candidate.status}: it has not been validated yet; export it once the "
            "sandbox has accepted it"
        )
    try:
        graph_json = candidate.graph_json
    except ValueError as exc:  # a stored graph without its JSON text; the archive says why
        raise ExportError(str(exc)) from None
    if not graph_json or not candidate.fingerprint:
        raise ExportError(f"{label} has no validated graph or fingerprint in the archive")
    try:
        return rebuild_graph(graph_json)
    except GraphRejectedError as exc:
        raise ExportError(
            f"{label}'s stored graph is refused by this version of the sandbox ({exc}); validate "
            "the loss again with `lossforge validate`"
        ) from None


def _checked_function(candidate: CandidateRecord, graph: LossGraph) -> str:
    """The name of the one function the source defines, after the sandbox's static checks."""
    source = candidate.source
    # The size cap is a guard for untrusted input, not part of the contract: this source was
    # admitted under its campaign's cap.
    report = static.check(source, max_bytes=len(source.encode("utf-8", errors="replace")))
    if not report.ok or report.function_name is None:
        raise ExportError(
            f"candidate {candidate.id}'s source fails the sandbox's static checks now "
            f"({report.reason}); validate it again with `lossforge validate`"
        )
    if set(report.parameters) != set(graph.input_names):
        raise ExportError(
            f"candidate {candidate.id}'s source takes {list(report.parameters)} but its stored "
            f"graph takes {list(graph.input_names)}; the archive row is inconsistent"
        )
    if report.function_name in _MODULE_NAMES - {"loss"}:
        raise ExportError(
            f"candidate {candidate.id}'s function is called {report.function_name!r}, a name the "
            "exported module needs for itself; rename the function to `loss`"
        )
    return report.function_name


# -- rendering --------------------------------------------------------------------------------


def _render(
    *,
    archive: Archive,
    candidate: CandidateRecord,
    function_name: str,
    inputs: Sequence[str],
    values: Sequence[ProbeValues],
    row: LeaderboardRow | None,
    module_name: str,
) -> str:
    campaign = archive.get_campaign(candidate.campaign_id)
    parents = [(pid, _name_of(archive, pid)) for pid in candidate.parent_ids]
    provenance: dict[str, Any] = {
        "campaign_id": campaign.id,
        "campaign_name": campaign.name,
        "candidate_id": candidate.id,
        "name": candidate.name,
        "origin": candidate.origin,
        "parents": [{"id": pid, "name": name} for pid, name in parents],
        "thought": candidate.thought,
        "status": str(candidate.status),
        "created_at": candidate.created_at.isoformat(),
        "lossforge_version": _version(),
    }
    # What the engine recorded (seed, proposer, operator, model, prompt hash), without the genome:
    # the proposer's own working state.
    provenance |= {
        k: v
        for k, v in sorted(candidate.provenance.items())
        if k != "genome" and k not in provenance
    }
    scores = (
        {
            "stage": row.stage,
            "score_vs_dpo": row.score,
            "spread": row.spread,
            "seeds": row.seeds,
            "score_low": row.score_low,
            "score_high": row.score_high,
            "held_out_score_vs_dpo": row.held_out_score,
            "held_out_low": row.held_out_low,
            "held_out_high": row.held_out_high,
            "fresh_held_out_score_vs_dpo": row.fresh_held_out_score,
            "fresh_held_out_low": row.fresh_held_out_low,
            "fresh_held_out_high": row.fresh_held_out_high,
            "fresh_held_out_seeds": row.fresh_held_out_seeds,
            "confirmation": row.confirmation,
        }
        if row is not None
        else {}
    )
    alias = _alias(candidate.name, function_name)
    aliases = []
    if function_name != "loss":
        aliases.append(f"loss = {function_name}  # the contract's name")
    if alias is not None:
        aliases.append(f"{alias} = {function_name}  # the same function, by its candidate's name")
    probes = [
        {
            "inputs": v.inputs,
            "losses": _plain(v.losses),
            "grad_policy_chosen_logps": _plain(v.grad_policy_chosen_logps),
            "grad_policy_rejected_logps": _plain(v.grad_policy_rejected_logps),
        }
        for v in values
    ]
    return TEMPLATE.substitute(
        docstring=_docstring(
            candidate=candidate,
            campaign_name=campaign.name,
            parents=parents,
            row=row,
            inputs=inputs,
            module_name=module_name,
        ),
        loss="\n\n\n".join([candidate.source.rstrip(), *aliases]),  # the source verbatim
        provenance=_literal("PROVENANCE", provenance),
        scores=_literal("SCORES", scores),
        inputs=_literal("INPUTS", tuple(inputs)),
        fingerprint=_str(candidate.fingerprint),
        fingerprint_version=_str(FINGERPRINT_VERSION),
        zero_below=repr(ZERO_BELOW),
        probes=_literal("PROBES", probes),
    )


def _docstring(
    *,
    candidate: CandidateRecord,
    campaign_name: str,
    parents: Sequence[tuple[int, str | None]],
    row: LeaderboardRow | None,
    inputs: Sequence[str],
    module_name: str,
) -> str:
    """The module docstring; text from the archive is escaped (`_doc`), the rest is ours."""
    p = candidate.provenance

    def field(label: str, value: object) -> str:
        return f"    {label:<13} {_doc(str(value)) if value not in (None, '') else '-'}"

    lines = [
        f"lossforge loss {_doc(candidate.name)} (candidate {candidate.id}), exported with its "
        "provenance and a self-check.",
        "",
        "The loss function below is the code its proposer wrote, as the lossforge sandbox",
        "validated it; PROBES holds what the sandbox's rebuilt graph of it computes on the",
        "sandbox's probe set, and self_check() recomputes that from the readable function.",
        "",
        "Provenance",
        field("campaign", f"{candidate.campaign_id} ({campaign_name})"),
        field("candidate", f"{candidate.id} ({candidate.name})"),
        field("origin", candidate.origin),
        field("proposer", p.get("proposer")),
        field("operator", p.get("operator")),
        field("model", p.get("model")),
        field("prompt hash", p.get("prompt_hash")),
        field("seed", p.get("seed")),
        field(
            "parents",
            ", ".join(f"{pid} ({name or 'not in the archive'})" for pid, name in parents),
        ),
        field("status", candidate.status),
        *([field("reason", candidate.reason)] if candidate.reason else []),
        field("created", candidate.created_at.isoformat(timespec="seconds")),
        field("fingerprint", f"{candidate.fingerprint} ({FINGERPRINT_VERSION})"),
        field("lossforge", _version()),
        "",
    ]
    if candidate.origin == "baseline":
        lines.append("Citation (a baseline: the paper and equation its source implements)")
    else:
        lines.append("Thought (the proposer's own account of the idea)")
    lines += [_doc(line) for line in _wrap(candidate.thought or "-", indent="    ")]
    lines += [
        "",
        "Scores vs DPO (mean of per-seed paired differences [95% interval], n seeds; above 0 is",
        "better than DPO)",
    ]
    if row is not None and row.stage is not None and row.score is not None:
        lines += [
            field("stage", row.stage),
            field("public", _interval(row.score, row.score_low, row.score_high, row.seeds)),
        ]
    if row is not None and row.held_out_score is not None:
        held = _interval(
            row.held_out_score, row.held_out_low, row.held_out_high, row.held_out_seeds
        )
        lines.append(field("held-out", f"{held}, tasks the proposer never saw"))
    if row is not None and row.fresh_held_out_score is not None:
        fresh = _interval(
            row.fresh_held_out_score,
            row.fresh_held_out_low,
            row.fresh_held_out_high,
            row.fresh_held_out_seeds,
        )
        lines.append(field("confirmation", f"{fresh}, held-out tasks on fresh seeds"))
    if row is None or (row.score is None and row.held_out_score is None):
        lines.append("    none yet: no stage has finished for it")
    lines += ["", *_verdict(row)]
    lines += ["", *_usage(module_name, inputs)]
    return "\n".join(lines)


def _interval(score: float, low: float | None, high: float | None, n: int) -> str:
    if low is None or high is None:
        return f"{score:+.4f} (n = {n}, no interval)"
    return f"{score:+.4f} [{low:+.4f}, {high:+.4f}] (n = {n})"


def _verdict(row: LeaderboardRow | None) -> list[str]:
    """What the numbers above allow one to claim (EVALUATION.md, rule 5)."""
    if row is not None and row.confirmation == "confirmed":
        return [
            "CONFIRMED: better than DPO on held-out tasks, on seeds never used to select it",
            "(95% interval above 0).",
        ]
    if row is not None and row.confirmation == "overfit":
        return [
            "OVERFIT: better than DPO on the public tasks it was selected on, but significantly",
            "worse on held-out tasks. Do not expect it to beat DPO elsewhere.",
        ]
    return [
        "UNCONFIRMED: this loss has not been shown to beat DPO on held-out tasks on fresh seeds;",
        "any gain above is a lead, not a result.",
    ]


def _usage(module_name: str, inputs: Sequence[str]) -> list[str]:
    refs = "refs_chosen_logps" in inputs or "refs_rejected_logps" in inputs
    lines = [
        "Usage (import by the name the file is saved under)",
        f"    import {module_name} as exported",
        "",
        "    exported.self_check()  # the readable loss reproduces the archived values",
        "    losses = exported.loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps,",
        f"                           ref_rejected_logps, beta{_extra_args(inputs)})  # (B,)",
        "",
        "    from trl import DPOConfig",
        "    Trainer = exported.dpo_trainer_class()  # a trl.DPOTrainer subclass (trl 1.16)",
        "    trainer = Trainer(model=model, args=DPOConfig(output_dir='out', beta=0.1),",
        "                      train_dataset=dataset, processing_class=tokenizer"
        + (", ref_models=[ref, other_ref])" if refs else ")"),
        "    trainer.train()",
        "",
        f"`python {module_name}.py` runs the self-check. Importing this module needs only torch;",
        "dpo_trainer_class() imports trl. The trainer sums the completion tokens' log-probs as",
        "TRL does and calls `loss`; DPOConfig's loss_type is not used.",
    ]
    if "chosen_lengths" in inputs or "rejected_lengths" in inputs:
        lines.append("chosen_lengths and rejected_lengths are the completion token counts.")
    if refs:
        lines += [
            "This loss takes K reference models: pass them as ref_models (the first is the primary",
            "reference, the model the policy starts from); ref_*_logps is their mean (or the",
            "ref_weights-weighted sum) and refs_*_logps all K, as a (K, B) tensor.",
        ]
    return lines


def _extra_args(inputs: Sequence[str]) -> str:
    extra = [name for name in inputs if name not in REQUIRED_INPUTS]
    return "".join(f", {name}" for name in extra)


# -- safe text --------------------------------------------------------------------------------


def _doc(text: str) -> str:
    """`text` for a (non-raw) triple-quoted docstring: reads back as `text` exactly.

    Backslashes and every double quote are escaped (so no run of three can close the string, nor
    can a quote at the end merge with the closing one), as is anything non-printable (NUL, CR,
    line separators, lone surrogates: they would break or silently change the file). Newlines
    are left to the caller, which splits on them first.
    """
    out = []
    for ch in text:
        if ch in '\\"':
            out.append("\\" + ch)
        elif ch.isprintable():
            out.append(ch)
        else:
            code = ord(ch)
            out.append(
                f"\\x{code:02x}"
                if code < 0x100
                else (f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}")
            )
    return "".join(out)


def _wrap(text: str, *, indent: str) -> list[str]:
    """Paragraphs of `text` wrapped for the docstring (words are never split)."""
    lines = []
    for paragraph in text.splitlines() or [""]:
        lines += textwrap.wrap(
            paragraph,
            width=_WIDTH,
            initial_indent=indent,
            subsequent_indent=indent,
            break_long_words=False,
            break_on_hyphens=False,
        ) or [""]
    return lines


def _literal(name: str, value: Any) -> str:
    """`NAME = <value>` as Python source, laid out like ruff formats a literal."""
    return f"{name} = {_format(value, 0, len(name) + 3)}"


def _format(value: Any, indent: int, used: int) -> str:
    """Plain data (dict, list, tuple, str, int, float, bool, None) as a Python literal built from
    reprs: on one line when it fits after `used` characters, else one item per line at `indent`
    + 4, with lists of scalars packed several to a line."""
    flat = _flat(value)
    fits = indent + used + len(flat) <= _WIDTH
    if fits or not value or not isinstance(value, dict | list | tuple):
        return flat
    inner = " " * (indent + 4)
    if isinstance(value, dict):
        body = [
            f"{inner}{_str(key)}: {_format(item, indent + 4, len(_str(key)) + 2)},"
            for key, item in value.items()
        ]
        brackets = "{}"
    else:
        brackets = "[]" if isinstance(value, list) else "()"
        if any(isinstance(item, dict | list | tuple) for item in value):
            body = [f"{inner}{_format(item, indent + 4, 0)}," for item in value]
        else:
            body = _packed([_flat(item) + "," for item in value], inner)
    return "\n".join([brackets[0], *body, " " * indent + brackets[1]])


def _flat(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_str(k)}: {_flat(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flat(v) for v in value) + "]"
    if isinstance(value, tuple):
        return "(" + ", ".join(_flat(v) for v in value) + ("," if len(value) == 1 else "") + ")"
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    if isinstance(value, str):
        return _str(value)
    if value is None or isinstance(value, int | float):
        return repr(value)
    raise TypeError(f"cannot export a {type(value).__name__} as a literal")


def _str(text: str) -> str:
    """repr(text), in double quotes where it has none inside (as ruff formats strings)."""
    literal = repr(text)
    if literal[0] == "'" and '"' not in text:  # then text has no quote at all
        literal = f'"{literal[1:-1]}"'
    return literal


def _packed(items: Sequence[str], inner: str) -> list[str]:
    """Items joined by spaces into lines of at most _WIDTH characters, each starting `inner`."""
    lines, line = [], ""
    for item in items:
        if line and len(inner) + len(line) + 1 + len(item) > _WIDTH:
            lines.append(inner + line)
            line = ""
        line = f"{line} {item}" if line else item
    return [*lines, inner + line]


def _plain(values: Sequence[float]) -> list[float | str]:
    """Floats as literals; non-finite ones as "nan"/"inf"/"-inf" (the module reads them back)."""
    return [v if math.isfinite(v) else str(v) for v in values]


def _slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")[:40].strip("_")


def _alias(name: str, function_name: str) -> str | None:
    """`<name>_loss`, when it is a usable, new module-level name."""
    slug = _slug(name).removesuffix("_loss")
    alias = f"{slug}_loss"
    if not slug or not alias.isidentifier() or keyword.iskeyword(alias):
        return None
    if alias in _MODULE_NAMES or alias == function_name:
        return None
    return alias


def _name_of(archive: Archive, candidate_id: int) -> str | None:
    try:
        return archive.get_candidate(candidate_id).name
    except NotFoundError:
        return None


def _version() -> str:
    try:
        return importlib.metadata.version("lossforge")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
