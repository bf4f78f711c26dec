"""The campaign spec: what to search, how to evaluate, and when to stop (YAML or JSON).

Validated by pydantic with unknown fields refused, so a typo is an error that names the field
(`stages.0.promote_fraction: Input should be less than or equal to 1`), never a silent default.
Bytes become a document in `discovery.spec_text` (size, encoding, depth and shape checks first).
It does not run anything; the engine reads it.
"""

from __future__ import annotations

import typing
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from discovery.proposers.llm.config import HFLocalConfig, LLMConfig, refuse_api_key
from discovery.spec_text import (
    Location,
    SpecError,
    SpecFormat,
    read_spec_bytes,
    spec_document,
    spec_format,
)
from evaluator import (
    BASELINES,
    CONFIG_CLASSES,
    BanditConfig,
    HFConfig,
    StageConfigError,
    TinyLMConfig,
    config_error,
    stage_tasks,
)


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


class _Stage(_Strict):
    """What every stage of the cascade has; `name` and `config` come with each kind below."""

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

    @model_validator(mode="after")
    def _known_tasks(self) -> _Stage:
        known = self.held_out()
        unknown = [t for t in self.tasks or [] if t not in known]
        if unknown:
            raise ValueError(f"unknown {self.name} tasks {unknown}; known: {sorted(known)}")
        if self.elite_seeds is not None and self.elite_seeds <= self.seeds:
            raise ValueError(
                f"elite_seeds ({self.elite_seeds}) must exceed seeds ({self.seeds}): elites are "
                "re-evaluated with more seeds than the field"
            )
        return self

    def held_out(self) -> dict[str, bool]:
        """The stage's tasks (all of them, not only `tasks`), each mapped to whether it is held
        out."""
        return stage_tasks(self.name, self.config)  # type: ignore[attr-defined]

    def task_names(self) -> list[str]:
        return list(self.tasks or self.held_out())

    def held_out_only(self) -> bool:
        """Are all of the stage's tasks held out (scored, never used to select)?"""
        held = self.held_out()
        return all(held[t] for t in self.task_names())


class BanditStage(_Stage):
    name: Literal["bandit"] = Field(description="Which stage: bandit, tinylm or hf.")
    config: BanditConfig = Field(
        default_factory=BanditConfig, description="How the bandit stage trains and measures."
    )


class TinyLMStage(_Stage):
    name: Literal["tinylm"] = Field(description="Which stage: bandit, tinylm or hf.")
    config: TinyLMConfig = Field(
        default_factory=TinyLMConfig, description="How the tinylm stage trains and measures."
    )


class HFStage(_Stage):
    name: Literal["hf"] = Field(description="Which stage: bandit, tinylm or hf.")
    config: HFConfig = Field(
        description="What the hf stage trains (model, dataset), how, and how it scores."
    )


# One stage of the cascade; `name` says which kind, and so which config fields are allowed.
StageSpec = Annotated[BanditStage | TinyLMStage | HFStage, Field(discriminator="name")]


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
        problems = [_problem(err) for err in exc.errors()]
        raise SpecError(
            "invalid campaign spec: "
            + "; ".join(f"{_dotted(loc)}: {msg}" for loc, msg in problems),
            problems,
        ) from None


def read_spec(data: bytes, *, fmt: SpecFormat, source: str) -> CampaignSpec:
    """The one way from bytes to a spec, for the CLI, the API and the web form: the document
    checks of `discovery.spec_text` (size, encoding, depth, shape), then every field."""
    return parse_spec(spec_document(data, fmt=fmt, source=source))


def load_spec(path: Path) -> CampaignSpec:
    """Read a YAML or JSON spec file (JSON for `.json`); SpecError, one sentence, for a file that
    cannot be read or is not a spec (discovery.spec_text), and for each bad field."""
    return read_spec(read_spec_bytes(path), fmt=spec_format(path), source=str(path))


_STAGE_KINDS = {"bandit", "tinylm", "hf"}


def _location(loc: tuple[str | int, ...]) -> Location:
    """pydantic's location without the union tag it inserts after a stage's index
    (`stages.0.tinylm.config.beta` is `stages.0.config.beta` to the user)."""
    out: list[str | int] = []
    for i, part in enumerate(loc):
        tagged = i >= 2 and loc[i - 2] == "stages" and isinstance(loc[i - 1], int)
        if not (tagged and part in _STAGE_KINDS):
            out.append(part)
    return tuple(out)


def _dotted(loc: Location) -> str:
    return ".".join(str(p) for p in loc) or "spec"


def _problem(err: Any) -> tuple[Location, str]:
    """(where, what) of one pydantic error, in the user's terms: a stage config's own check
    (StageConfigError) names its field below the config (`stages.0.config.model.n_head`), an
    unknown field gets the fields known there, and pydantic's "Value error, " is dropped."""
    loc, msg = _location(err["loc"]), str(err["msg"])
    raw = err["loc"]
    if len(raw) >= 4 and raw[0] == "stages" and raw[2] in _STAGE_KINDS and raw[3] == "config":
        # Inside a stage config: the config's own wording (`lossforge evaluate --config` too).
        named = config_error(CONFIG_CLASSES[raw[2]], {**err, "loc": raw[4:]})
        return ("stages", raw[1], "config", *named.field.split(".")), named.reason
    cause = (err.get("ctx") or {}).get("error")
    if isinstance(cause, StageConfigError):
        return loc + tuple(cause.field.split(".") if cause.field else ()), cause.reason
    if err["type"] in ("union_tag_invalid", "union_tag_not_found"):  # a stage's `name`
        given = (err.get("ctx") or {}).get("tag")
        what = f"unknown stage {given!r}" if given else "every stage needs a name"
        return (*loc, "name"), f"{what}; choose {', '.join(sorted(_STAGE_KINDS))}"
    if err["type"] == "value_error":
        return loc, msg.removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        known = _known_fields(err["loc"][:-1])
        if known:
            return loc, f"unknown field; known: {', '.join(known)}"
    return loc, msg


def _known_fields(loc: tuple[str | int, ...]) -> list[str]:
    """The field names of the model at `loc` inside a CampaignSpec (tags included in `loc`)."""
    model: Any = CampaignSpec
    for i, part in enumerate(loc):
        if isinstance(part, int):
            continue  # a list index: the item's model is found by the next name
        if part in _STAGE_KINDS and i >= 2 and loc[i - 2] == "stages":
            model = {"bandit": BanditStage, "tinylm": TinyLMStage, "hf": HFStage}[part]
            continue
        fields = getattr(model, "model_fields", None)
        if not fields or part not in fields:
            return []
        model = _model_of(fields[part].annotation)
    return sorted(getattr(model, "model_fields", {}))


def _model_of(annotation: Any) -> Any:
    """The pydantic model inside an annotation (`X | None`, `list[X]`, the stage union)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return annotation if typing.get_origin(annotation) is list else None
