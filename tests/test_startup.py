"""Commands that only read or print start at once: run in one fresh interpreter (as a user's
shell starts them), none of them may import torch, transformers, Ray or the sandbox."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from discovery.archive import open_archive
from discovery.runner import create_campaign
from discovery.spec import parse_spec

HEAVY = ("torch", "transformers", "ray", "sandbox")
SPEC = {
    "name": "light",
    "stages": [{"name": "bandit"}, {"name": "tinylm", "config": {"beta": 0.5}}],
    "budget": {"candidates": 2},
}
# A typo inside a stage config: reported with its field, before anything heavy is imported.
TYPO = (
    "name: t\nstages:\n  - name: tinylm\n    config: {model: {n_hed: 2}}\nbudget: {candidates: 1}\n"
)


def test_reading_commands_import_nothing_heavy(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    archive = open_archive(url)
    campaign_id = create_campaign(archive, parse_spec(SPEC))
    archive.engine.dispose()
    (tmp_path / "typo.yaml").write_text(TYPO)
    commands = [
        ["--help"],
        ["--version"],
        ["leaderboard", "--campaign", str(campaign_id)],
        ["campaigns"],
        ["show", "1"],  # no such candidate: an error line, still nothing heavy
        ["db", "current"],
        ["run", "typo.yaml"],
    ]
    probe = (
        "import sys\n"
        "from api.cli import main\n"
        f"for args in {commands!r}:\n"
        "    try:\n"
        "        main(args)\n"
        "    except SystemExit as exc:\n"
        "        code = exc.code\n"
        f"    print('RESULT', args[0], code, sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env={**os.environ, "LOSSFORGE_DATABASE_URL": url},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    outcomes = [
        line.split(" ", 2)[1:] for line in result.stdout.splitlines() if line.startswith("RESULT")
    ]
    assert [name for name, _ in outcomes] == [args[0] for args in commands]
    for name, rest in outcomes:
        assert rest.endswith("[]"), f"{name} imported {rest}"
    codes = dict((name, rest.split(" ")[0]) for name, rest in outcomes)
    assert codes["--help"] == codes["--version"] == codes["leaderboard"] == codes["db"] == "0"
    assert codes["show"] == codes["run"] == "1"
    assert "stages.0.config.model.n_hed" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr
