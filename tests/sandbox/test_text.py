"""sandbox/text.py: source text that is what it looks like, and size caps checked before any parse.

Each rule has a source that breaks it (refused with the character's code point, name and line) and
an honest counterpart (accepted). The 1 MB sources are refused with the size reason through every
door: the Sandbox API, `lossforge validate` and `POST /api/validate`; the CLI refuses them
without importing torch or starting the worker pool.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from fastapi.testclient import TestClient

from api.app import create_app
from api.cli.validate import validate
from api.settings import Settings
from sandbox import Candidate, RejectionCode, Sandbox, Stage, VerdictStatus, static, text
from tests.api.conftest import RecordingLauncher

C = RejectionCode
MAX = 16_384  # SandboxConfig().max_source_bytes
TOKEN = "text-test-token-0123456789abcdef0123"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ROOT = Path(__file__).resolve().parents[2]

# DPO with a docstring, three lines above the return: a character placed in the docstring is on
# line 2, one placed in the comment on line 4.
HONEST = '''\
def loss(policy_chosen_logps, policy_rejected_logps, ref_chosen_logps, ref_rejected_logps, beta):
    """DPO: -log sigmoid(beta * margin). DOC"""
    margin = (policy_chosen_logps - ref_chosen_logps) - (policy_rejected_logps - ref_rejected_logps)
    z = beta * margin  # COMMENT
    return -F.logsigmoid(z)
'''


def honest(doc: str = "", comment: str = "") -> str:
    return HONEST.replace("DOC", doc).replace("COMMENT", comment)


# Trojan Source (CVE-2021-42574): RLO ... PDF in the docstring reverses what a page shows, so a
# reader sees 'z = -z' written out where the file holds a harmless phrase.
TROJAN = honest(doc="\u202e z- = z \u202c")
# The Cyrillic е (U+0435) makes 'bеta' a new name that reads as `beta`: the function then ignores
# the caller's beta (a reader sees `beta * margin`).
HOMOGLYPH = HONEST.replace(
    "    z = beta * margin", "    b\u0435ta = 1.0\n    z = b\u0435ta * margin"
)
# A benign comment and docstring full of non-ASCII text: accents, maths, an emoji with its
# variation selector.
BENIGN = honest(doc="Δ = s_c − s_r; β·Δ, naïve café ⚠️", comment="Rafailov et al. — ✓ 😀")

# (where the character goes, the character, the line, the text the reason must hold)
CHARACTERS = [
    ("doc", "\u202e", 2, "U+202E RIGHT-TO-LEFT OVERRIDE (bidi control)"),
    ("doc", "\u2066", 2, "U+2066 LEFT-TO-RIGHT ISOLATE (bidi control)"),
    ("comment", "\u200f", 4, "U+200F RIGHT-TO-LEFT MARK (bidi control)"),
    ("comment", "\u061c", 4, "U+061C ARABIC LETTER MARK (bidi control)"),
    ("doc", "\u200b", 2, "U+200B ZERO WIDTH SPACE (invisible)"),
    ("comment", "\u200d", 4, "U+200D ZERO WIDTH JOINER (invisible)"),
    ("comment", "\u2060", 4, "U+2060 WORD JOINER (invisible)"),
    ("doc", "\ufeff", 2, "U+FEFF ZERO WIDTH NO-BREAK SPACE (invisible)"),
    ("comment", "\u00ad", 4, "U+00AD SOFT HYPHEN (invisible)"),
    ("comment", "\U000e0041", 4, "U+E0041 TAG LATIN CAPITAL LETTER A (invisible)"),
    ("doc", "\u3164", 2, "U+3164 HANGUL FILLER (invisible)"),
    ("comment", "\x1b", 4, "U+001B (control character)"),
    ("doc", "\x00", 2, "U+0000 (control character)"),
    ("comment", "\u2028", 4, "U+2028 LINE SEPARATOR (line separator)"),
    ("comment", "\ud800", 4, "U+D800 (not valid UTF-8)"),
    ("doc", "\ufffd", 2, "U+FFFD REPLACEMENT CHARACTER (not valid UTF-8)"),
]


@pytest.mark.parametrize(
    ("where", "char", "line", "expected"), CHARACTERS, ids=[c[3][:6] for c in CHARACTERS]
)
def test_each_hidden_character_is_refused_with_its_code_point_and_line(
    where: str, char: str, line: int, expected: str
) -> None:
    source = honest(**{where: f"x{char}y"})
    report = static.check(source, max_bytes=MAX)
    assert (report.stage, report.code) == (Stage.STATIC, C.UNSAFE_TEXT), report.reason
    assert report.reason.startswith(f"line {line}, column "), report.reason
    assert expected in report.reason


def test_a_leading_byte_order_mark_is_refused_with_advice() -> None:
    report = static.check("\ufeff" + HONEST, max_bytes=MAX)
    assert report.code is C.UNSAFE_TEXT
    assert report.reason.startswith("line 1, column 1: U+FEFF") and "without one" in report.reason


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        (HOMOGLYPH, "line 4, column 6: the name 'b\u0435ta' holds U+0435 CYRILLIC SMALL LETTER IE"),
        (  # Python folds the fullwidth name to `logsigmoid`; a reader cannot tell
            HONEST.replace("F.logsigmoid", "F.\uff4cogsigmoid"),
            "line 5, column 15: the name '\uff4cogsigmoid' holds U+FF4C FULLWIDTH LATIN",
        ),
        (  # a mathematician's honest name: refused too, with what to write instead
            HONEST.replace("    z = beta *", "    \u03b2 = beta\n    z = \u03b2 *"),
            "line 4, column 5: the name '\u03b2' holds U+03B2 GREEK SMALL LETTER BETA",
        ),
    ],
    ids=["cyrillic", "fullwidth", "greek"],
)
def test_non_ascii_identifiers_are_refused(source: str, expected: str) -> None:
    report = static.check(source, max_bytes=MAX)
    assert (report.stage, report.code) == (Stage.STATIC, C.UNSAFE_TEXT), report.reason
    assert expected in report.reason and "names must be ASCII" in report.reason


def test_the_sandbox_refuses_hidden_text_even_with_layer_1_off(
    sandbox: Sandbox, sandbox_no_static: Sandbox
) -> None:
    for which in (sandbox, sandbox_no_static):
        verdict = which.validate(Candidate("trojan", "", TROJAN))
        assert (verdict.stage, verdict.code) == (Stage.STATIC, C.UNSAFE_TEXT), verdict.reason
        assert "line 2" in verdict.reason and "U+202E" in verdict.reason
    reply = json.dumps({"name": "trojan", "thought": "", "code": TROJAN})  # "\u202e" escaped
    assert "\u202e" not in reply
    assert sandbox.validate(reply).code is C.UNSAFE_TEXT
    homoglyph = sandbox.validate(Candidate("homoglyph", "", HOMOGLYPH))
    assert homoglyph.code is C.UNSAFE_TEXT and "U+0435" in homoglyph.reason


def test_honest_code_with_non_ascii_comments_is_accepted(sandbox: Sandbox) -> None:
    for source in (HONEST, BENIGN, TROJAN.replace("\u202e", "").replace("\u202c", "")):
        verdict = sandbox.validate(Candidate("dpo", "", source))
        assert verdict.status is VerdictStatus.ACCEPTED, verdict.reason


# -- size: 1 MB, refused before anything parses it --------------------------------------------

MEGABYTE = 1 << 20
_DPO_BODY = HONEST.split("\n", 1)[1]
ONE_MEGABYTE = {
    "blank-lines": "\n" * MEGABYTE,
    "whitespace": " \t\n" * (MEGABYTE // 3),
    # valid-looking code: one def whose body repeats DPO's lines
    "code": HONEST.split("\n", 1)[0] + "\n" + _DPO_BODY * (MEGABYTE // len(_DPO_BODY)),
}


@pytest.mark.parametrize("kind", sorted(ONE_MEGABYTE))
def test_a_megabyte_is_refused_by_size_through_the_sandbox(sandbox: Sandbox, kind: str) -> None:
    source = ONE_MEGABYTE[kind]
    verdict = sandbox.validate(Candidate(kind, "", source))
    assert (verdict.stage, verdict.code) == (Stage.STATIC, C.SOURCE_TOO_LARGE)
    assert verdict.reason.startswith(f"code is {len(source)} bytes; the cap is {MAX}")
    reply = sandbox.validate("```python\n" + source + "```")  # a reply: measured before parsing
    assert reply.code is C.SOURCE_TOO_LARGE and reply.reason.startswith("the reply is ")
    assert sandbox.validate(Candidate(kind, "", honest())).accepted  # the same code, small


@pytest.mark.parametrize("kind", sorted(ONE_MEGABYTE))
def test_a_megabyte_is_refused_by_size_through_the_cli(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "big.py"
    path.write_text(ONE_MEGABYTE[kind], encoding="utf-8")
    result = CliRunner().invoke(validate, [str(path)])
    assert result.exit_code == 1
    assert result.output.startswith(
        f"REJECTED [static/source_too_large] code is {path.stat().st_size} bytes; the cap is {MAX}"
    )
    reply = tmp_path / "big.json"
    reply.write_text(json.dumps({"name": "big", "code": ONE_MEGABYTE[kind]}), encoding="utf-8")
    result = CliRunner().invoke(validate, [str(reply), "--json"])
    verdict = json.loads(result.output)
    assert result.exit_code == 1 and verdict["code"] == "source_too_large"
    assert verdict["reason"].startswith("the reply is ")


def test_the_cli_refuses_a_file_that_is_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "latin1.py"
    path.write_bytes(honest(comment="caf\u00e9").encode("latin-1"))  # é as the byte 0xE9
    result = CliRunner().invoke(validate, [str(path)])
    assert result.exit_code == 1
    assert result.output.startswith(
        "REJECTED [static/unsafe_text] line 4, column 29: U+FFFD REPLACEMENT CHARACTER"
    )


def test_the_cli_refuses_text_without_loading_torch(tmp_path: Path) -> None:
    big, trojan = tmp_path / "big.py", tmp_path / "trojan.py"
    big.write_text(ONE_MEGABYTE["code"], encoding="utf-8")
    trojan.write_text(TROJAN, encoding="utf-8")
    script = (
        "import atexit, sys\n"
        "atexit.register(lambda: print('torch loaded:', 'torch' in sys.modules))\n"
        "from api.cli import main\n"
        "main(['validate', sys.argv[1]])\n"
    )
    for path, code in ((big, "source_too_large"), (trojan, "unsafe_text")):
        result = subprocess.run(
            [sys.executable, "-c", script, str(path)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert result.returncode == 1, result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith(f"REJECTED [static/{code}] "), result.stdout
        assert lines[1] == "torch loaded: False"


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(database_url=f"sqlite:///{tmp_path / 'api.db'}", api_token=TOKEN)
    with TestClient(create_app(settings, launcher=lambda _: RecordingLauncher())) as test_client:
        yield test_client


def test_post_validate_refuses_large_and_hidden_code(client: TestClient) -> None:
    for kind, source in ONE_MEGABYTE.items():
        for code in (source, source * 3):
            response = client.post("/api/validate", json={"code": code}, headers=AUTH)
            if len(json.dumps({"code": code})) > 2_000_000:  # over the body cap: refused unread
                assert response.status_code == 413, kind
                assert "larger than 2,000,000 bytes" in response.json()["detail"]
            else:  # over the schema's 200,000 characters
                assert response.status_code == 422, kind
                assert "200000 characters" in response.text
    over_the_cap = "\n" * 150_000 + honest()  # within the schema, over the sandbox's cap
    response = client.post("/api/validate", json={"code": over_the_cap}, headers=AUTH)
    assert response.status_code == 200
    body = response.json()
    assert (body["status"], body["stage"], body["code"]) == (
        "rejected",
        "static",
        "source_too_large",
    )
    assert body["reason"].startswith(f"code is {len(over_the_cap)} bytes; the cap is {MAX}")
    response = client.post("/api/validate", json={"code": TROJAN, "name": "t"}, headers=AUTH)
    assert response.status_code == 200 and response.json()["code"] == "unsafe_text"
    assert "U+202E RIGHT-TO-LEFT OVERRIDE" in response.json()["reason"]


def test_refusal_passes_honest_text_on() -> None:
    assert text.refusal(Candidate("dpo", "", BENIGN), max_source_bytes=MAX) is None
    refused = text.refusal(Candidate("t", "", TROJAN), max_source_bytes=MAX)
    assert refused is not None and refused.candidate_name == "t" and refused.code is C.UNSAFE_TEXT
