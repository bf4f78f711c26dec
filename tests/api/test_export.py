"""Exporting an archived loss as a standalone module (discovery/service/export.py) and
`lossforge export`.

The archive is filled the way a campaign fills it: candidates go through the real sandbox and
discovery's Intake (accepted, duplicate, rejected), baselines as the engine adds them, and DONE
evaluations carry scores. Exported modules are run in fresh processes (as a user runs them) for
the self-check and imported in this process only where a test edits or trains them; both are
our own generated code around our own test losses.
"""

from __future__ import annotations

import ast
import importlib.util
import json
import math
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from api.cli import main
from discovery.archive import (
    Archive,
    CandidateStatus,
    EvaluationStatus,
    NotFoundError,
    open_archive,
)
from discovery.intake import Intake
from discovery.ledger import Ledger
from discovery.proposers.base import Proposal
from discovery.runner import create_campaign
from discovery.service.export import ExportError, export_module
from discovery.spec import parse_spec
from evaluator.baselines import BASELINES
from sandbox import Sandbox, SandboxConfig, rebuild_graph
from sandbox.fingerprint import fingerprint

# A length-normalized logistic loss with an exponential bump: needs lengths, logsigmoid and exp.
EVOLVE_SOURCE = """\
def loss(
    policy_chosen_logps,
    policy_rejected_logps,
    ref_chosen_logps,
    ref_rejected_logps,
    beta,
    chosen_lengths,
    rejected_lengths,
):
    # per-token log-ratios, (B,)
    chosen = (policy_chosen_logps - ref_chosen_logps) / chosen_lengths
    rejected = (policy_rejected_logps - ref_rejected_logps) / rejected_lengths
    z = 20.0 * beta * (chosen - rejected)
    return -F.logsigmoid(z) + 0.1 * torch.exp(-torch.abs(z))
"""
DPO_RESPELLED = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    margin = (policy_chosen_logps - policy_rejected_logps) - (ref_chosen_logps - ref_rejected_logps)
    return F.softplus(-beta * margin)
"""
IMPORTS_OS = """\
import os

def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    return -F.logsigmoid(beta * (policy_chosen_logps - policy_rejected_logps))
"""
HOSTILE_NAME = 'x"""\nimport os\\'
HOSTILE_THOUGHT = (
    'Ends a docstring: """ then runs code.\nimport os; os.system("id")\n'
    'A backslash \\ and \\""" and \'\'\' and an ESC \x1b and a CR \r and a quote at the end"'
)
SPEC = {
    "name": "export test",
    "seed": 3,
    "stages": [
        {"name": "bandit", "tasks": ["tabular"], "seeds": 2},
        {"name": "tinylm", "tasks": ["arithmetic", "sentiment"], "seeds": 2},  # sentiment held out
    ],
    "budget": {"candidates": 8},
    "baselines": ["dpo", "ipo", "mrpo"],
}
# Per-run scores vs DPO: (stage, task) -> one score per seed.
EVOLVE_SCORES = {
    ("bandit", "tabular"): (0.05, 0.07),
    ("tinylm", "arithmetic"): (0.02, 0.04),
    ("tinylm", "sentiment"): (0.01, 0.03),
}


@dataclass(frozen=True)
class Filled:
    url: str  # the archive's database URL
    campaign_id: int
    ids: dict[str, int]  # dpo, ipo, mrpo, evolve, duplicate, rejected, proposed, hostile


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(SandboxConfig(pool_size=1)) as box:
        yield box


def fill(archive: Archive, sandbox: Sandbox) -> Filled:
    """A campaign as the engine leaves it: baselines, an evolved child, a duplicate, a rejected
    and an unvalidated candidate, and scored runs."""
    campaign_id = create_campaign(archive, parse_spec(SPEC))
    intake = Intake(
        campaign_id=campaign_id,
        archive=archive,
        ledger=Ledger(),
        sandbox=sandbox,
    )
    ids: dict[str, int] = {}
    for name in ("dpo", "ipo", "mrpo"):  # as Engine._ensure_baselines adds them
        record = archive.add_candidate(
            campaign_id=campaign_id,
            name=name,
            source=BASELINES[name].source,
            origin="baseline",
            thought=BASELINES[name].cite,
        )
        assert intake.validate(record) is not None
        ids[name] = record.id

    def propose(key: str, name: str, code: str, thought: str, *, validate: bool = True) -> None:
        proposal = Proposal(
            name=name,
            thought=thought,
            code=code,
            parent_ids=(ids["dpo"], ids["ipo"]),
            genome={"tree": ["neg", "logsigmoid"]},
            origin="evolve",
            operator="crossover",
        )
        record = intake.store(
            proposal,
            island=0,
            provenance={
                "seed": 3,
                "proposer": "evolve",
                "operator": proposal.operator,
                "genome": proposal.genome,
                "model": None,
                "prompt_hash": None,
            },
        )
        if validate:
            intake.validate(record)
        ids[key] = record.id

    propose("evolve", "evo-1a2b3c4d", EVOLVE_SOURCE, "Per-token logistic margin with a bump.")
    propose("duplicate", "evo-dpo-again", DPO_RESPELLED, "DPO, written another way.")
    propose("rejected", "evo-os", IMPORTS_OS, "Imports os.")
    propose("proposed", "evo-later", EVOLVE_SOURCE, "Not validated yet.", validate=False)
    propose("hostile", HOSTILE_NAME, EVOLVE_SOURCE.replace("0.1 *", "0.2 *"), HOSTILE_THOUGHT)
    status = {key: archive.get_candidate(i).status for key, i in ids.items()}
    assert status["evolve"] is CandidateStatus.ACCEPTED, archive.get_candidate(ids["evolve"])
    assert status["duplicate"] is CandidateStatus.DUPLICATE
    assert status["rejected"] is CandidateStatus.REJECTED
    assert status["hostile"] is CandidateStatus.ACCEPTED

    for key, scores in (("dpo", None), ("evolve", EVOLVE_SCORES)):
        for (stage, task), per_seed in EVOLVE_SCORES.items():
            for seed, score in enumerate(per_seed):
                archive.add_evaluation(
                    candidate_id=ids[key],
                    stage=stage,
                    task=task,
                    seed=seed,
                    status=EvaluationStatus.DONE,
                    score=0.0 if scores is None else score,
                    metrics={"reward": 0.5},
                )
    return Filled(url=str(archive.engine.url), campaign_id=campaign_id, ids=ids)


@pytest.fixture(scope="module")
def filled(sandbox: Sandbox, tmp_path_factory: pytest.TempPathFactory) -> Filled:
    """One SQLite archive for the tests that only read it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('archive') / 'archive.db'}"
    archive = open_archive(url)
    result = fill(archive, sandbox)
    archive.engine.dispose()
    return Filled(url=url, campaign_id=result.campaign_id, ids=result.ids)


@pytest.fixture(scope="module")
def exported(filled: Filled, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The exported module files of the accepted candidates, by key."""
    directory = tmp_path_factory.mktemp("exported")
    archive = open_archive(filled.url)
    paths = {}
    for key in ("evolve", "dpo", "ipo", "mrpo", "hostile"):
        module = export_module(archive, filled.ids[key])
        paths[key] = directory / module.filename
        paths[key].write_text(module.text, encoding="utf-8")
    archive.engine.dispose()
    return paths


def load(path: Path, name: str | None = None) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def python(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=120
    )


def words(text: str) -> str:
    return " ".join(text.split())


# -- what the module holds ------------------------------------------------------------------------


def test_the_module_holds_provenance_scores_source_and_probes(
    archive: Archive, sandbox: Sandbox
) -> None:
    filled = fill(archive, sandbox)
    module = export_module(archive, filled.ids["evolve"])
    evolve_id = filled.ids["evolve"]
    assert module.filename == f"lossforge_evo_1a2b3c4d_{evolve_id}.py"
    tree = ast.parse(module.text)
    doc = ast.get_docstring(tree, clean=False) or ""
    for fact in (
        f"campaign      {filled.campaign_id} (export test)",
        f"candidate     {evolve_id} (evo-1a2b3c4d)",
        "origin        evolve",
        "proposer      evolve",
        "operator      crossover",
        f"parents       {filled.ids['dpo']} (dpo), {filled.ids['ipo']} (ipo)",
        "status        ACCEPTED",
        "Per-token logistic margin with a bump.",
        "stage         tinylm",
        # arithmetic: 0.02, 0.04; the 95% interval of two seeds is wide (t = 12.71)
        "public        +0.0300 [-0.0971, +0.1571] (n = 2)",
        "held-out      +0.0200 [-0.1071, +0.1471] (n = 2), tasks the proposer never saw",
        "UNCONFIRMED: this loss has not been shown to beat DPO on held-out tasks on fresh seeds;",
        "lossforge     0.1.0",
        archive.get_candidate(evolve_id).fingerprint or "no fingerprint",
        "chosen_lengths, rejected_lengths)",
    ):
        assert fact in doc, fact
    assert EVOLVE_SOURCE in module.text  # verbatim, comments included
    assert "\nevo_1a2b3c4d_loss = loss" in module.text
    constants = {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in tree.body
        if isinstance(node, ast.Assign)
        and isinstance(node.targets[0], ast.Name)
        and node.targets[0].id in ("PROVENANCE", "SCORES", "INPUTS", "PROBES")
    }
    assert constants["INPUTS"][-2:] == ("chosen_lengths", "rejected_lengths")
    assert constants["SCORES"]["held_out_score_vs_dpo"] == pytest.approx(0.02)
    assert constants["SCORES"]["confirmation"] == "unconfirmed"
    assert constants["PROVENANCE"]["parents"][0] == {"id": filled.ids["dpo"], "name": "dpo"}
    assert "genome" not in constants["PROVENANCE"]
    probes = constants["PROBES"]
    assert [p["inputs"]["beta"] for p in probes] == pytest.approx([0.05, 0.1, 0.5])
    assert set(probes[0]["inputs"]) == set(constants["INPUTS"])  # only what the loss takes
    assert all(len(p["losses"]) == 8 for p in probes)

    baseline = export_module(archive, filled.ids["dpo"])
    doc = ast.get_docstring(ast.parse(baseline.text), clean=False) or ""
    assert "Citation (a baseline" in doc and "2305.18290" in words(doc)
    assert "public        +0.0000 [+0.0000, +0.0000] (n = 2)" in doc


def test_only_accepted_losses_are_exported(archive: Archive, sandbox: Sandbox) -> None:
    filled = fill(archive, sandbox)
    with pytest.raises(NotFoundError, match="no candidate with id 9999"):
        export_module(archive, 9999)
    with pytest.raises(ExportError, match=r"rejected by the sandbox .*import"):
        export_module(archive, filled.ids["rejected"])
    with pytest.raises(
        ExportError, match=rf"duplicate of candidate {filled.ids['dpo']} \(dpo\).*export"
    ):
        export_module(archive, filled.ids["duplicate"])
    with pytest.raises(ExportError, match="PROPOSED: it has not been validated"):
        export_module(archive, filled.ids["proposed"])


def test_names_and_thoughts_stay_text(exported: dict[str, Path], filled: Filled) -> None:
    text = exported["hostile"].read_text(encoding="utf-8")
    tree = ast.parse(text)
    imports = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    assert sorted(alias.name for node in imports for alias in node.names) == [
        "functools",
        "hashlib",
        "math",
        "torch",
        "torch.nn.functional",
        "warnings",
    ]
    doc = ast.get_docstring(tree, clean=False) or ""
    assert HOSTILE_NAME in doc  # the title line holds the name exactly
    assert words(HOSTILE_THOUGHT) in words(doc)
    provenance = next(
        ast.literal_eval(n.value)
        for n in tree.body
        if isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "PROVENANCE"
    )
    assert provenance["thought"] == HOSTILE_THOUGHT and provenance["name"] == HOSTILE_NAME
    assert exported["hostile"].name == f"lossforge_x_import_os_{filled.ids['hostile']}.py"


# -- the self-check ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", ["evolve", "dpo", "ipo", "mrpo"])
def test_the_self_check_passes_in_a_fresh_process(exported: dict[str, Path], key: str) -> None:
    result = python(exported[key].name, cwd=exported[key].parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\n"


def test_an_edited_loss_fails_the_self_check(exported: dict[str, Path], tmp_path: Path) -> None:
    text = exported["evolve"].read_text(encoding="utf-8")
    edited = tmp_path / "edited.py"
    edited.write_text(text.replace("+ 0.1 * torch.exp(", "+ 0.11 * torch.exp(", 1))
    module = load(edited)
    with pytest.raises(
        AssertionError, match=r"probe batch 0 \(beta=0\.05.*\), example \d+: losses"
    ) as exc_info:
        module.self_check()
    numbers = str(exc_info.value).split(" is ")[1].split(" (rtol")[0]
    got, recorded = (float(x) for x in numbers.split(" but the archive recorded "))
    assert got != recorded and recorded > 0


# DPO's values with the gradient of -logsigmoid(-βΔ): a loss that shows DPO and trains toward the
# rejected answer.
DETACH_TRICK = """\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    chosen = policy_chosen_logps - ref_chosen_logps
    z = beta * (chosen - (policy_rejected_logps - ref_rejected_logps))
    shown = -F.logsigmoid(z)
    trained = -F.logsigmoid(-z)
    return shown.detach() + (trained - trained.detach())
"""
DPO_RETURN = "    return -F.logsigmoid(beta * delta)\n"


def test_a_gradient_unlike_the_recorded_one_fails_the_self_check(
    exported: dict[str, Path], tmp_path: Path
) -> None:
    text = exported["dpo"].read_text(encoding="utf-8")
    assert DPO_RETURN in text
    edited = tmp_path / "edited_gradient.py"
    shown, trained = "-F.logsigmoid(beta * delta)", "-F.logsigmoid(-beta * delta)"
    trick = f"    return ({shown}).detach() + ({trained}) - ({trained}).detach()\n"
    edited.write_text(text.replace(DPO_RETURN, trick, 1), encoding="utf-8")
    with pytest.raises(
        AssertionError, match=r"probe batch 0 \(beta=0\.05.*\), example 0: grad_policy_chosen_logps"
    ):
        load(edited).self_check()  # the values match the record; the gradients do not


def test_an_archived_detach_trick_fails_its_own_self_check(
    archive: Archive, tmp_path: Path
) -> None:
    """A graph archived before the sandbox compared values and gradients: its record agrees with
    it, so only differentiating the values shows the trick."""
    from tests.sandbox.helpers import graph_data  # our own source, captured in this process

    campaign_id = create_campaign(archive, parse_spec(SPEC))

    def exported(name: str, source: str) -> Path:
        """`source` archived as accepted with the graph this process captures, then exported."""
        graph_json = json.dumps(graph_data(source))
        record = archive.add_candidate(
            campaign_id=campaign_id, name=name, source=source, origin="evolve"
        )
        archive.update_candidate(
            record.id,
            status=CandidateStatus.ACCEPTED,
            graph_json=graph_json,
            fingerprint=fingerprint(rebuild_graph(graph_json)),
        )
        module = export_module(archive, record.id)
        path = tmp_path / module.filename
        path.write_text(module.text, encoding="utf-8")
        return path

    with pytest.raises(
        AssertionError, match=r"gradient w\.r\.t\. policy_chosen_logps is .* but the values change"
    ):
        load(exported("shows-dpo", DETACH_TRICK)).self_check()
    load(exported("dpo", BASELINES["dpo"].source)).self_check()


def test_the_module_imports_and_checks_itself_without_trl(exported: dict[str, Path]) -> None:
    path = exported["evolve"]
    script = (
        "import sys; sys.modules['trl'] = None\n"
        f"import {path.stem} as m\n"
        "m.self_check()\n"
        "try:\n"
        "    m.dpo_trainer_class()\n"
        "except ImportError:\n"
        "    print('trl needed only for the trainer')\n"
    )
    result = python("-c", script, cwd=path.parent)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "trl needed only for the trainer\n"


# -- the TRL trainer --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_models(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Two tiny GPT-2s with a word-level tokenizer, built locally (the hf stage tests' helpers)."""
    from tests.evaluator.hf.local import save_causal_lm

    root = tmp_path_factory.mktemp("models")
    save_causal_lm(root / "policy", seed=0)
    save_causal_lm(root / "other", seed=1)
    return root / "policy", root / "other"


@pytest.fixture
def one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def dpo_args(tmp_path: Path, *, steps: int, **overrides: Any) -> Any:
    from trl import DPOConfig

    return DPOConfig(
        output_dir=str(tmp_path / "out"),
        max_steps=steps,
        per_device_train_batch_size=2,
        learning_rate=1e-3,
        max_length=32,
        report_to=[],
        use_cpu=True,
        logging_steps=1,
        save_strategy="no",
        disable_tqdm=True,
        dataloader_num_workers=0,
        seed=0,
        **overrides,
    )


def make_trainer(
    trainer_class: Any, policy: Path, args: Any, **trainer_kwargs: Any
) -> tuple[Any, torch.nn.Module]:
    """A trainer of a fresh copy of the tiny policy on 16 preference pairs, and the policy."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tests.evaluator.hf.local import preference_rows

    model = AutoModelForCausalLM.from_pretrained(policy)
    trainer = trainer_class(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(preference_rows(16, seed=0)),
        processing_class=AutoTokenizer.from_pretrained(policy),
        **trainer_kwargs,
    )
    return trainer, model


def train(
    module: ModuleType,
    policy: Path,
    tmp_path: Path,
    *,
    steps: int,
    precompute: bool = False,
    **trainer_kwargs: Any,
) -> tuple[list[float], bool]:
    """Train `steps` steps; (the logged losses, whether the weights changed)."""
    args = dpo_args(tmp_path, steps=steps, precompute_ref_log_probs=precompute)
    trainer, model = make_trainer(module.dpo_trainer_class(), policy, args, **trainer_kwargs)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    after = model.state_dict()
    changed = any(not torch.equal(before[k], after[k].cpu()) for k in before)
    return losses, changed


@pytest.mark.usefixtures("one_thread")
def test_the_trainer_trains_with_the_exported_loss(
    exported: dict[str, Path], tiny_models: tuple[Path, Path], tmp_path: Path
) -> None:
    module = load(exported["evolve"], "exported_evolve")
    losses, changed = train(module, tiny_models[0], tmp_path, steps=5, precompute=True)
    assert len(losses) == 5 and all(math.isfinite(v) for v in losses), losses
    assert changed


@pytest.mark.usefixtures("one_thread")
def test_the_trainer_stops_on_a_non_finite_gradient(
    exported: dict[str, Path], tiny_models: tuple[Path, Path], tmp_path: Path
) -> None:
    # DPO plus sqrt(|Δ - Δ|): 0 in value, a NaN derivative (inf * 0) at every step.
    text = exported["dpo"].read_text(encoding="utf-8")
    nan_gradient = "    return -F.logsigmoid(beta * delta) + torch.sqrt(torch.abs(delta - delta))\n"
    path = tmp_path / "nan_gradient.py"
    path.write_text(text.replace(DPO_RETURN, nan_gradient, 1), encoding="utf-8")
    module = load(path, "exported_nan_gradient")
    with pytest.raises(
        FloatingPointError,
        match=r"gradient of the loss w\.r\.t\. the policy's log-probs is "
        r"non-finite at step 1 \(4 of 4 sequences\) although the loss is finite",
    ):
        train(module, tiny_models[0], tmp_path, steps=1, precompute=True)


@pytest.mark.usefixtures("one_thread")
def test_the_trainer_feeds_k_references_to_a_multi_reference_loss(
    exported: dict[str, Path], tiny_models: tuple[Path, Path], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM

    module = load(exported["mrpo"], "exported_mrpo")
    with pytest.raises(ValueError, match="pass ref_models"):
        train(module, tiny_models[0], tmp_path, steps=1)
    refs = [AutoModelForCausalLM.from_pretrained(p) for p in tiny_models]
    losses, changed = train(module, tiny_models[0], tmp_path, steps=2, ref_models=refs)
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses), losses
    assert changed


@pytest.mark.usefixtures("one_thread")
def test_the_exported_dpo_trainer_computes_trls_dpo_loss(
    exported: dict[str, Path], tiny_models: tuple[Path, Path], tmp_path: Path
) -> None:
    from transformers import AutoModelForCausalLM
    from trl import DPOTrainer

    module = load(exported["dpo"], "exported_dpo")
    args = dpo_args(tmp_path, steps=1, beta=0.5)
    other = tiny_models[1]  # a reference with other weights, so that the margins are not 0
    ours, _ = make_trainer(
        module.dpo_trainer_class(),
        tiny_models[0],
        args,
        ref_model=AutoModelForCausalLM.from_pretrained(other),
    )
    theirs, _ = make_trainer(
        DPOTrainer, tiny_models[0], args, ref_model=AutoModelForCausalLM.from_pretrained(other)
    )
    batch = next(iter(theirs.get_train_dataloader()))
    expected = theirs.compute_loss(theirs.model, batch).item()
    assert abs(expected - math.log(2)) > 1e-3  # a real margin, not the loss at Δ = 0
    assert ours.compute_loss(ours.model, batch).item() == pytest.approx(expected, rel=1e-5)


# -- the command --------------------------------------------------------------------------------


def test_the_export_command_writes_the_module(
    filled: Filled, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = CliRunner()
    env = {"LOSSFORGE_DATABASE_URL": filled.url}
    out = tmp_path / "best_loss.py"
    result = runner.invoke(main, ["export", str(filled.ids["evolve"]), "-o", str(out)], env=env)
    assert result.exit_code == 0, result.output
    assert result.output.strip() == str(out)
    assert "def self_check(" in out.read_text(encoding="utf-8")

    monkeypatch.chdir(tmp_path)
    result = runner.invoke(main, ["export", str(filled.ids["dpo"])], env=env)
    assert result.exit_code == 0, result.output
    name = f"lossforge_dpo_{filled.ids['dpo']}.py"
    assert result.output.strip() == name and (tmp_path / name).is_file()
    (tmp_path / "exports").mkdir()
    result = runner.invoke(main, ["export", str(filled.ids["dpo"]), "-o", "exports"], env=env)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "exports" / name).is_file()

    result = runner.invoke(main, ["export", "9999"], env=env)
    assert result.exit_code == 1 and "no candidate with id 9999" in result.output
    result = runner.invoke(main, ["export", str(filled.ids["rejected"]), "-o", str(out)], env=env)
    assert result.exit_code == 1 and "rejected by the sandbox" in result.output
    assert "import" in result.output  # the sandbox's reason
