"""docker-compose.yml and the Dockerfile agree with the code (no Docker engine runs here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import click
import pytest
import yaml

from api.cli import main
from api.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _interpolate(value: str) -> str:
    """Resolve compose's ${VAR:-default} / ${VAR:?error} the way an operator's shell would."""

    def one(match: re.Match[str]) -> str:
        body = match.group(1)
        if ":-" in body:
            return body.split(":-", 1)[1]
        return f"{body.split(':', 1)[0].lower()}-value"

    return re.sub(r"\$\{([^}]*)\}", one, value)


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def settings_env_names() -> set[str]:
    names = set()
    for name, field in Settings.model_fields.items():
        names.add(f"LOSSFORGE_{name.upper()}")
        if field.validation_alias is not None:
            names.update(getattr(field.validation_alias, "choices", []))
    return names


def test_services_are_there(compose: dict) -> None:
    assert {"api", "postgres", "ray-head", "ray-worker", "vllm"} <= set(compose["services"])
    assert compose["services"]["vllm"]["profiles"] == ["vllm"]


def test_every_lossforge_variable_is_a_setting(compose: dict, settings_env_names: set[str]) -> None:
    for name, service in compose["services"].items():
        env = service.get("environment") or {}
        for key in env:
            if key.startswith("LOSSFORGE_"):
                assert key in settings_env_names, f"{name}: {key} is read by no setting"
    # ...and the api service gets what it needs to reach the archive, Ray and the proposer.
    api_env = compose["services"]["api"]["environment"]
    for key in ("LOSSFORGE_DATABASE_URL", "LOSSFORGE_RAY_ADDRESS", "LOSSFORGE_LLM_BASE_URL"):
        assert key in api_env


def test_urls_point_at_the_services_that_serve_them(compose: dict) -> None:
    services = compose["services"]
    env = {k: _interpolate(str(v)) for k, v in services["api"]["environment"].items()}

    db = urlsplit(Settings(database_url=env["LOSSFORGE_DATABASE_URL"]).database_url)
    postgres_env = services["postgres"]["environment"]
    assert db.scheme == "postgresql+psycopg" and db.hostname == "postgres"
    assert db.path.lstrip("/") == postgres_env["POSTGRES_DB"]
    assert db.username == postgres_env["POSTGRES_USER"]

    ray_host, ray_port = env["LOSSFORGE_RAY_ADDRESS"].split(":")
    assert ray_host == "ray-head"
    assert f"--port={ray_port}" in services["ray-head"]["command"]
    assert f"--address=ray-head:{ray_port}" in services["ray-worker"]["command"]

    llm = urlsplit(env["LOSSFORGE_LLM_BASE_URL"])
    assert llm.hostname == "vllm" and llm.path == "/v1"
    assert f"--port={llm.port}" in [_interpolate(a) for a in services["vllm"]["command"]]


def test_ray_token_authentication_is_shared_by_the_cluster_and_its_clients(
    compose: dict,
) -> None:
    services = compose["services"]
    tokens = set()
    for name in ("api", "ray-head", "ray-worker"):
        env = services[name]["environment"]
        assert env["RAY_AUTH_MODE"] == "token", name  # `ray start` and Ray's client read it
        tokens.add(_interpolate(env["RAY_AUTH_TOKEN"]))
    assert len(tokens) == 1  # one token for head, workers and the API's engines
    api_env = {k: _interpolate(str(v)) for k, v in services["api"]["environment"].items()}
    settings = Settings.model_validate(api_env)  # as the API's settings read its environment
    assert settings.ray_auth_token is not None
    assert settings.ray_auth_token.get_secret_value() == tokens.pop()


def test_gpu_workers_reserve_gpus(compose: dict) -> None:
    for name in ("ray-worker", "vllm"):
        devices = compose["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]


def test_api_command_and_ports_match_the_cli_and_settings(compose: dict) -> None:
    api = compose["services"]["api"]
    command = api["command"]
    # `serve` is a real subcommand of the entry point (commands load when looked up)
    serve = main.get_command(click.Context(main), command[0])
    assert serve is not None
    serve_options = {opt for p in serve.params for opt in p.opts}
    assert {"--host", "--port"} <= serve_options
    port = int(command[command.index("--port") + 1])
    assert f"{port}:{port}" in api["ports"]
    assert port == Settings.model_fields["port"].default


def test_image_entry_point_is_the_console_script() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    entrypoint = re.search(r"^ENTRYPOINT\s+(\[.*\])", dockerfile, re.MULTILINE)
    assert entrypoint is not None
    assert yaml.safe_load(entrypoint.group(1)) == ["lossforge"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["lossforge"] == "api.cli:main"
    cmd = yaml.safe_load(re.search(r"^CMD\s+(\[.*\])", dockerfile, re.MULTILINE).group(1))
    assert cmd[0] in main.list_commands(click.Context(main))
    # Every package the console script imports is copied into the image.
    for package in ("api", "discovery", "evaluator", "sandbox"):
        assert re.search(rf"^COPY {package} ", dockerfile, re.MULTILINE), package
