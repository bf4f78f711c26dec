"""Bad input gets one sentence, never a traceback: malformed spec files through the real CLI,
malformed and oversized bodies through the real API on a real server, and archives that cannot be
opened (a newer schema, a file that is no database, a server that does not answer) through every
command that opens one."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from api.cli import main
from api.settings import Settings
from discovery.archive import create_archive_engine, open_archive, upgrade
from discovery.spec_text import MAX_SPEC_BYTES
from tests.api.conftest import SMALL_SPEC, Served, free_port, recording, serve  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]
LOSSFORGE = str(Path(sys.executable).parent / "lossforge")
HEAVY = ("torch", "transformers", "ray", "sandbox")


def _block_yaml(levels: int) -> bytes:
    return "".join(f"{' ' * i}k:\n" for i in range(levels)).encode() + b" " * levels + b"x: 1\n"


# name -> (file content, what the one line says after the file's name)
BAD_FILES: dict[str, tuple[bytes, str]] = {
    "binary.yaml": (b"\x89PNG\r\n\x1a\n\x00\x00\xff", "is not UTF-8 text (byte 0x89 at offset 0)"),
    "empty.yaml": (b"", "is empty: a campaign spec is a mapping with at least `name`"),
    "list.yaml": (b"- name: x\n- name: y\n", "holds a list, not a mapping of fields"),
    "scalar.yaml": (b"just some words\n", "holds a string, not a mapping of fields"),
    "null.json": (b"null", "is empty"),
    "deep.json": (b"[" * 100_000 + b"]" * 100_000, "nests more than 64 levels deep (line 1)"),
    "deep-braces.json": (b'{"a":' * 100_000, "nests more than 64 levels deep (line 1)"),
    "deep-block.yaml": (_block_yaml(1_000), "nests more than 64 levels deep (line 65)"),
}
# Refused before any field is read; a bad field needs the evaluator's checks (torch).
NO_DOCUMENT = dict(BAD_FILES)
BAD_FILES["typo.yaml"] = (
    b"name: x\nstages: [{name: bandit}]\nbudget: {candidatez: 3}\n",
    "invalid campaign spec: budget.candidatez: unknown field; known: candidates, compute_hours, "
    "llm_dollars, wall_time_s",
)


def _one_error_line(output: str) -> str:
    assert "Traceback" not in output, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), output
    return lines[0]


def test_spec_files_that_are_no_spec_get_one_line_without_importing_torch(tmp_path: Path) -> None:
    """The real `lossforge run` on each file, in one fresh interpreter (as a user's shell starts
    it): exit 1, one line naming the file, and neither torch nor Ray loaded; nor by `show`."""
    for name, (content, _) in NO_DOCUMENT.items():
        (tmp_path / name).write_bytes(content)
    probe = (
        "import os, sys\n"
        "from api.cli import main\n"
        f"for name in {list(NO_DOCUMENT)!r}:\n"
        "    try:\n"
        "        main(['run', name])\n"
        "    except SystemExit as exc:\n"
        "        print(name, exc.code, sorted(m for m in %r if m in sys.modules))\n"
        "os.environ['LOSSFORGE_DATABASE_URL'] = 'sqlite:///other.db'\n"
        "try:\n"
        "    main(['show', '1'])\n"
        "except SystemExit as exc:\n"
        "    print('show', exc.code, sorted(m for m in %r if m in sys.modules))\n" % (HEAVY, HEAVY)
    )
    env = {**os.environ, "LOSSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"}
    result = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == len(NO_DOCUMENT) + 1, result.stderr
    *outcomes, show = result.stdout.splitlines()
    assert errors.pop() == "Error: no candidate with id 1" and show == "show 1 []"
    for (name, (_, message)), error, outcome in zip(
        NO_DOCUMENT.items(), errors, outcomes, strict=True
    ):
        assert error.startswith(f"Error: {name}") and message in error, error
        assert outcome == f"{name} 1 []", outcome  # exit status 1, nothing heavy imported
    assert not (tmp_path / "a.db").exists()  # refused before the archive was opened


def test_an_endless_spec_is_refused_after_the_cap(tmp_path: Path) -> None:
    """`lossforge run` on a pipe that would give 50 MB: it reads no more than the cap (plus what
    the pipe buffers) and says so in one line."""
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    written = [0]

    def feed() -> None:
        chunk = b"#" * 65_536
        try:
            with fifo.open("wb", buffering=0) as pipe:
                while written[0] < 50_000_000:
                    written[0] += pipe.write(chunk)
        except BrokenPipeError:  # the reader closed its end: it wants no more
            pass

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    result = subprocess.run(
        [LOSSFORGE, "run", str(fifo)],
        env={**os.environ, "LOSSFORGE_DATABASE_URL": f"sqlite:///{tmp_path / 'a.db'}"},
        capture_output=True,
        text=True,
        timeout=120,
    )
    writer.join(timeout=30)
    assert not writer.is_alive()
    assert result.returncode == 1
    line = _one_error_line(result.stderr)
    assert f"{fifo} is larger than 1,000,000 bytes, the most a campaign spec may be" in line
    # What the writer got rid of: what was read, plus at most a full pipe buffer (64 KiB by
    # default; at most 1 MiB) and the chunk in flight.
    assert MAX_SPEC_BYTES < written[0] <= MAX_SPEC_BYTES + 1 + 1_048_576 + 65_536, written


# -- archives that cannot be opened ------------------------------------------------------------


def _invoke(url: str, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), env={"LOSSFORGE_DATABASE_URL": url})
    # An exception that escaped the command would be a traceback on a user's terminal.
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return result.exit_code, result.output


def _newer_archive(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'newer.db'}"
    open_archive(url).engine.dispose()
    engine = create_archive_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    engine.dispose()
    return url


COMMANDS_THAT_OPEN_THE_ARCHIVE = [
    ["run", "SPEC"],
    ["run", "--resume", "1"],
    ["leaderboard"],
    ["show", "1"],
    ["export", "1"],
    ["pause", "1"],
    ["cancel", "1"],
    ["db", "upgrade"],
    ["db", "downgrade", "base"],
    ["db", "current"],
    ["serve", "--port", "1"],  # refused before it binds
]


def test_every_command_names_an_archive_from_a_newer_lossforge(tmp_path: Path) -> None:
    url = _newer_archive(tmp_path)
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps(SMALL_SPEC))
    for command in COMMANDS_THAT_OPEN_THE_ARCHIVE:
        code, output = _invoke(url, *[str(spec) if a == "SPEC" else a for a in command])
        assert code == 1, (command, output)
        assert (
            f"the archive at {url} is at schema revision 9999_future, which this lossforge"
            in output
        ), (command, output)
        assert "a newer lossforge wrote it; upgrade lossforge" in output
        assert "Traceback" not in output
    engine = create_archive_engine(url)
    with engine.connect() as connection:  # left as it was
        assert connection.scalar(text("SELECT version_num FROM alembic_version")) == "9999_future"
    engine.dispose()


@pytest.mark.parametrize(
    ("make_url", "said"),
    [
        (
            lambda tmp: (
                (tmp / "notes.txt").write_text("notes\n" * 50) and f"sqlite:///{tmp}/notes.txt"
            ),
            "notes.txt is not an SQLite database (file is not a database)",
        ),
        (
            lambda tmp: f"postgresql://lf:hunter2-pw@127.0.0.1:{free_port()}/lossforge",
            "cannot connect to the archive at postgresql+psycopg://lf:***@127.0.0.1:",
        ),
        (
            lambda tmp: "postgresql://lf:hunter2-pw@no-such-host.invalid/lossforge",
            "cannot connect to the archive at postgresql+psycopg://lf:***@no-such-host.invalid",
        ),
    ],
    ids=["not-a-database", "closed-port", "unknown-host"],
)
def test_unusable_archives_get_one_line_naming_the_url_without_its_password(
    tmp_path: Path, make_url: Callable[[Path], str], said: str
) -> None:
    url = make_url(tmp_path)
    for command in (["show", "1"], ["leaderboard"], ["db", "current"], ["serve", "--port", "1"]):
        code, output = _invoke(url, *command)
        assert code == 1, (command, output)
        line = _one_error_line(output)
        assert said in line and "LOSSFORGE_DATABASE_URL" in line, line
        assert "hunter2-pw" not in output


def test_db_current_exits_1_unless_the_archive_is_at_the_newest_revision(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    code, output = _invoke(url, "db", "current")
    assert code == 1 and "has no lossforge tables" in output and "lossforge db upgrade" in output
    engine = create_archive_engine(url)
    upgrade(engine, "0001")
    engine.dispose()
    code, output = _invoke(url, "db", "current")
    assert code == 1 and "is at the older revision 0001" in output
    assert "run `lossforge db upgrade`" in output
    assert _invoke(url, "db", "upgrade")[0] == 0
    code, output = _invoke(url, "db", "current")
    assert code == 0 and output.startswith("database: ") and "Error" not in output
    code, output = _invoke(url, "db", "downgrade", "no-such-revision")
    assert code == 1 and "cannot move the archive to revision 'no-such-revision'" in output


# -- the API on a real server ------------------------------------------------------------------


@pytest.fixture
def api(tmp_path: Path, serve: Callable[..., Served]) -> Served:  # noqa: F811 - the fixture
    return serve(Settings(database_url=f"sqlite:///{tmp_path / 'a.db'}"), launcher=recording)


def test_the_api_answers_bad_specs_with_a_4xx_and_one_sentence(api: Served) -> None:
    with api.client() as client:
        for name, (content, message) in BAD_FILES.items():
            content_type = "application/json" if name.endswith(".json") else "application/yaml"
            response = client.post(
                "/api/campaigns", content=content, headers={"content-type": content_type}
            )
            assert response.status_code == 422, (name, response.text)
            errors = response.json()["detail"]
            said = " ".join(e["msg"] for e in errors)
            assert message.split(": ")[-1] in said, (name, said)
        assert client.get("/api/campaigns").json() == []


def _raw_post(base_url: str, path: str, head: bytes, body: bytes) -> bytes:
    """Send the request line, `head` and part of a body, then read what comes back."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\n".encode() + head + b"\r\n" + body)
        reply = b""
        while b"\r\n\r\n" not in reply or not reply.rstrip().endswith(b"}"):
            chunk = conn.recv(65_536)
            if not chunk:
                break
            reply += chunk
    return reply


def test_the_api_refuses_an_oversized_body_with_413_without_reading_it(api: Served) -> None:
    """The server answers after the first megabyte while the client still holds the other 49:
    the body is not read to its end."""
    for path, cap in (("/api/campaigns", b"1,000,000"), ("/api/validate", b"2,000,000")):
        declared = _raw_post(
            api.base_url,
            path,
            b"Content-Type: application/json\r\nContent-Length: 50000000\r\n",
            b"{" + b" " * 1000,
        )
        assert declared.startswith(b"HTTP/1.1 413 "), declared[:200]
        assert b"is larger than %s bytes" % cap in declared
        chunk = b" " * 500_000
        chunked = _raw_post(
            api.base_url,
            path,
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
            b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)),  # no last chunk
        )
        assert chunked.startswith(b"HTTP/1.1 413 "), chunked[:200]
    with api.client() as client:
        assert client.get("/api/campaigns").json() == []
        assert client.get("/healthz").status_code == 200
