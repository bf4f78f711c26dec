"""The campaign spec: what to search, how to evaluate, and when to stop (YAML or JSON).

Validated by pydantic with unknown fields refused, so a typo is an error that names the field
(`stages.0.promote_fraction: Input should be less than or equal to 1`), never a silent default.
Bytes become a document in `discovery.spec_text` (size, encoding, depth and shape checks first).
It does not run anything; the engine reads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from discovery.proposers.config import HFLocalConfig, LLMConfig, refuse_api_key
from discovery.spec_text import SpecError, read_spec_bytes, spec_document, spec_format
from evaluator.baselines import BASELINES
from evaluator.compare import stage_tasks
from evaluator.hf.errors import HFConfigError
from evaluator.jobs import check_stage_config


class _Strict(BaseModel):
    # Strict types too: `inspirations: false` or `seeds: "2"` is a mistake to report, not to coerce.
    # No inf or NaN: no field means them, and the archive's JSON columns refuse them.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class ProposerSpec(_Strict):
    kind: Literal["evolve", "llm", "hf-local"] = Field(
        "evolve",
        description="Which proposer writes candidates: evolve (offline symbolic search), llm (an "
        "OpenAI-compatible endpoint) or hf-local (a Hugging Face model from a directory).",
    )
    batch_size: int = Field(4, ge=1, le=64, description="Candidates asked for per proposal call.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Settings of the evolve proposer (EvolveConfig fields)."
    )
    llm: LLMConfig | None = Field(None, description="The endpoint, for kind llm.")
    hf_local: HFLocalConfig | None = Field(None, description="The local model, for kind hf-local.")

    @model_validator(mode="before")
    @classmethod
    def _no_secret(cls, data: Any) -> Any:
        return refuse_api_key(data)

    @model_validator(mode="after")
    def _sections(self) -> ProposerSpec:
        needed = {"llm": "llm", "hf-local": "hf_local"}.get(self.kind)
        if needed is not None and getattr(self, needed) is None:
            hint = (
                " (llm: {} takes base_url and model from LOSSFORGE_LLM_BASE_URL and "
                "LOSSFORGE_LLM_MODEL)"
                if needed == "llm"
                else " (hf_local: {path: DIR})"
            )
            raise ValueError(f"kind {self.kind!r} needs the section proposer.{needed}{hint}")
        for section in ("llm", "hf_local"):
            if section != needed and getattr(self, section) is not None:
                raise ValueError(f"proposer.{section} is set but kind is {self.kind!r}")
        if self.options and self.kind != "evolve":
            raise ValueError(f"proposer.options holds evolve settings but kind is {self.kind!r}")
        return self


class StageSpec(_Strict):
    name: Literal["bandit", "tinylm", "hf"]
    tasks: list[str] | None = Field(None, description="Tasks to run; default: all of the stage.")
    seeds: int = Field(2, ge=1, le=16, description="Seeds per task (DPO runs the same seeds).")
    promote_fraction: float = Field(
        0.25, gt=0, le=1, description="Best fraction of this stage promoted to the next."
    )
    elites: int = Field(
        3,
        ge=1,
        le=64,
        description="How many of the stage's best (by the low end of their 95% interval, one "
        "per lineage) are confirmed on fresh seeds.",
    )
    elite_seeds: int | None = Field(
        None,
        ge=2,
        le=32,
        description="Elites and DPO are re-run on the fresh seeds `seeds .. elite_seeds - 1`, on "
        "every task of the stage, held-out ones included: the confirmation (fresh seeds never "
        "change a selection score); unset: no confirmation.",
    )
    config: dict[str, Any] = Field(
        default_factory=dict,
        description="Stage config fields (BanditConfig / TinyLMConfig / HFConfig).",
    )

    @model_validator(mode="after")
    def _known_tasks(self) -> StageSpec:
        try:  # checked now, so a bad field fails the spec, not every job
            check_stage_config(self.name, self.config)
        except HFConfigError as exc:
            raise PydanticCustomError(
                "stage_config", "{message}", {"message": exc.message, "field": exc.field}
            ) from None
        except ValueError as exc:
            raise PydanticCustomError(
                "stage_config", "{message}", {"message": f"config: {exc}"}
            ) from None
        known = stage_tasks(self.name, self.config)
        unknown = [t for t in self.tasks or [] if t not in known]
        if unknown:
            raise ValueError(f"unknown {self.name} tasks {unknown}; known: {sorted(known)}")
        if self.elite_seeds is not None and self.elite_seeds <= self.seeds:
            raise ValueError(
                f"elite_seeds ({self.elite_seeds}) must exceed seeds ({self.seeds}): elites are "
                "re-evaluated with more seeds than the field"
            )
        return self

    def task_names(self) -> list[str]:
        return list(self.tasks or stage_tasks(self.name, self.config))

    def held_out_only(self) -> bool:
        """Are all of the stage's tasks held out (scored, never used to select)?"""
        held = stage_tasks(self.name, self.config)
        return all(held[t] for t in self.task_names())


class BudgetSpec(_Strict):
    candidates: int | None = Field(None, ge=1, description="Proposed candidates (not baselines).")
    wall_time_s: float | None = Field(
        None, gt=0, description="Seconds of running, summed over resumes."
    )
    compute_hours: float | None = Field(None, gt=0, description="Worker CPU-hours of evaluations.")
    llm_dollars: float | None = Field(None, gt=0, description="Dollars of LLM calls.")

    @model_validator(mode="after")
    def _at_least_one(self) -> BudgetSpec:
        if all(v is None for v in self.model_dump().values()):
            raise ValueError("set at least one budget (candidates, wall_time_s, ...)")
        return self


class PopulationSpec(_Strict):
    islands: int = Field(2, ge=1, le=64, description="Independent sub-populations.")
    migration_every: int = Field(
        12, ge=1, description="Accepted candidates between migrations of an island's best."
    )
    parents: int = Field(2, ge=1, le=8, description="Parents shown to the proposer per call.")
    inspirations: int = Field(2, ge=0, le=8, description="Diverse candidates shown per call.")


class CampaignSpec(_Strict):
    name: str = Field(min_length=1, max_length=200)
    seed: int = Field(0, ge=0, description="The one seed every random choice derives from.")
    proposer: ProposerSpec = Field(default_factory=ProposerSpec)
    stages: list[StageSpec] = Field(min_length=1, description="The cascade, cheapest first.")
    budget: BudgetSpec
    population: PopulationSpec = Field(default_factory=PopulationSpec)
    baselines: list[str] = Field(
        default_factory=lambda: sorted(BASELINES),
        description="Baselines evaluated alongside candidates (DPO always is: scores are vs DPO).",
    )
    max_in_flight: int = Field(8, ge=1, le=1024, description="Evaluation jobs queued at once.")

    @model_validator(mode="after")
    def _check(self) -> CampaignSpec:
        unknown = [b for b in self.baselines if b not in BASELINES]
        if unknown:
            raise ValueError(f"unknown baselines {unknown}; known: {sorted(BASELINES)}")
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"each stage may appear once; got {names}")
        for stage in self.stages[:-1]:
            if stage.held_out_only():
                raise ValueError(
                    f"the {stage.name} stage has only held-out tasks, so it cannot promote "
                    "candidates (held-out scores never select): make it the last stage"
                )
        return self


def parse_spec(data: object) -> CampaignSpec:
    """Validate parsed YAML/JSON data; SpecError lists each bad field with its path."""
    if not isinstance(data, dict):  # pydantic would say "a valid dictionary or instance of ..."
        raise SpecError(
            "invalid campaign spec: it must be a mapping with at least `name`, `stages` and "
            "`budget` (see examples/quickstart.yaml)"
        )
    try:
        return CampaignSpec.model_validate(data)
    except ValidationError as exc:
        raise SpecError(_describe(exc)) from None


def load_spec(path: Path) -> CampaignSpec:
    """Read a YAML or JSON spec file (JSON for `.json`); SpecError, one sentence, for a file that
    cannot be read or is not a spec (discovery.spec_text), and for each bad field."""
    return parse_spec(spec_document(read_spec_bytes(path), fmt=spec_format(path), source=str(path)))


def _describe(exc: ValidationError) -> str:
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "spec"
        field = (err.get("ctx") or {}).get("field")
        if field:  # a stage config field, named below the stage: stages.2.config.beta
            where = f"{where}.config.{field}"
        lines.append(f"{where}: {err['msg']}")
    return "invalid campaign spec: " + "; ".join(lines)
