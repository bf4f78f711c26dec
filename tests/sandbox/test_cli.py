"""`lossforge validate` (api/cli/validate.py): exit status and one-line output."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from api.cli.validate import validate
from tests.sandbox.sources import DPO, REWARDS_REJECTED


def _write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_accepted_python_file_exits_zero(tmp_path: Path) -> None:
    result = CliRunner().invoke(validate, [_write(tmp_path, "dpo.py", "import torch\n" + DPO)])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("ACCEPTED dpo fingerprint=")
    assert result.output.count("\n") == 1


def test_rejected_json_candidate_exits_one_with_the_reason(tmp_path: Path) -> None:
    candidate = json.dumps({"name": "flip", "thought": "", "code": REWARDS_REJECTED})
    result = CliRunner().invoke(validate, [_write(tmp_path, "flip.json", candidate)])
    assert result.exit_code == 1
    assert result.output.startswith("REJECTED [battery/rewards_rejected] ")
    assert result.output.count("\n") == 1


def test_json_output(tmp_path: Path) -> None:
    result = CliRunner().invoke(validate, [_write(tmp_path, "dpo.py", DPO), "--json"])
    verdict = json.loads(result.output)
    assert result.exit_code == 0 and verdict["status"] == "accepted" and verdict["graph_json"]
    unreadable = CliRunner().invoke(validate, [_write(tmp_path, "x.json", "{oops"), "--json"])
    assert unreadable.exit_code == 1
    assert json.loads(unreadable.output)["stage"] == "parse"


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    assert CliRunner().invoke(validate, [str(tmp_path / "nope.py")]).exit_code == 2


def test_console_script_runs_validate(tmp_path: Path) -> None:
    script = Path(sys.executable).parent / "lossforge"
    accepted = subprocess.run(
        [str(script), "validate", _write(tmp_path, "dpo.py", DPO)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert accepted.returncode == 0, accepted.stderr
    assert accepted.stdout.startswith("ACCEPTED")
    rejected = subprocess.run(
        [str(script), "validate", _write(tmp_path, "bad.py", "import os\n")],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert rejected.returncode == 1
    assert rejected.stdout.startswith("REJECTED [static/")
