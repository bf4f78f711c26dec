"""Joining an existing Ray cluster: its token authentication, and one sentence when it fails.

Ray 2.60 turns token authentication on for a cluster started with `ray start --head` wherever a
token exists (`~/.ray/auth_token`, which any local `ray.init()` writes, or `RAY_AUTH_TOKEN` /
`RAY_AUTH_TOKEN_PATH`), but a client given an explicit address sends no token unless
`RAY_AUTH_MODE=token` is set by hand: it retries for 20 s and ends in a ConnectionError traceback.
`prepare_auth` sets the client up as Ray itself does for `address="auto"`: with the token given
(LOSSFORGE_RAY_AUTH_TOKEN), else with Ray's own token where one exists. A cluster without
authentication ignores the token, so sending one is always safe.

`check_joinable` then asks the cluster's GCS for its id (milliseconds; an AuthenticationError at
once for a missing or wrong token) after a plain TCP connect (an address nobody answers would
otherwise cost `ray.init` 40 s), and raises `RayUnavailableError` with the address and the fix.

Ray's token set-up lives in private modules (`ray._private.authentication`, `ray._raylet`); they
are imported here and nowhere else, and a Ray without them (before token authentication) is left
as it is. This module starts no cluster and runs no task (see `dispatch`).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Iterator

from evaluator.errors import RayUnavailableError
from evaluator.secrets import Secret

log = logging.getLogger(__name__)

_CONNECT_TIMEOUT_S = 5.0  # a TCP connect to the GCS port; a live head answers in milliseconds
TOKEN_HINT = (
    "set LOSSFORGE_RAY_AUTH_TOKEN to the cluster's token (`ray get-auth-token` on its head node "
    "prints it)"
)


def prepare_auth(token: Secret | None) -> None:
    """Make this process's Ray client send `token`, or Ray's own token where one exists."""
    try:
        from ray._raylet import AuthenticationTokenLoader, Config  # noqa: PLC0415
    except ImportError:  # a Ray without token authentication: nothing to set up
        return
    loader = AuthenticationTokenLoader.instance()
    if token is None:
        # What `ray.init(address="auto")` does, for an explicit address too (without its log
        # line). An explicit RAY_AUTH_MODE (token or disabled) is the operator's and is kept.
        if "RAY_AUTH_MODE" in os.environ or not loader.has_token(ignore_auth_mode=True):
            return
    else:
        os.environ["RAY_AUTH_TOKEN"] = token.value
    # Ray reads its mode and token from the environment of the process (and of the processes
    # it starts): set there, then make Ray read them again.
    os.environ["RAY_AUTH_MODE"] = "token"
    Config.initialize("")
    loader.reset_cache()


def check_joinable(address: str) -> None:
    """Raise `RayUnavailableError` unless a Ray head answers at `address` (host:port) and
    accepts this client. Other forms (`auto`, `ray://...`) are left to `ray.init`."""
    host_port = _host_port(address)
    if host_port is None:
        return
    host, port = host_port
    try:
        with socket.create_connection((host, port), timeout=_CONNECT_TIMEOUT_S):
            pass
    except OSError as exc:
        raise RayUnavailableError(
            f"no Ray cluster answers at {address} ({_why(exc)}): start one there "
            f"(`ray start --head --port {port}`) or point LOSSFORGE_RAY_ADDRESS at a running "
            "cluster's head (unset, a local Ray instance starts)"
        ) from None
    try:
        from ray._raylet import GcsClient  # noqa: PLC0415
        from ray.exceptions import AuthenticationError  # noqa: PLC0415
    except ImportError:
        return
    try:
        with _quiet_stderr():  # Ray's C++ client logs each refusal on fd 2 as well
            GcsClient(address=f"{host}:{port}")
    except AuthenticationError:
        raise RayUnavailableError(
            f"the Ray cluster at {address} requires an authentication token and refused this "
            f"client's (missing or wrong): {TOKEN_HINT}"
        ) from None
    except Exception as exc:  # anything else Ray's client says; ray.init would fail on it too
        raise RayUnavailableError(
            f"the Ray cluster at {address} did not answer as a Ray head ({_first_line(exc)}): "
            "check LOSSFORGE_RAY_ADDRESS (host and GCS port, 6379 by default)"
        ) from None


def unavailable(address: str, exc: BaseException) -> RayUnavailableError:
    """The error for a `ray.init` at `address` that failed after `check_joinable` passed."""
    return RayUnavailableError(
        f"could not join the Ray cluster at {address} ({_first_line(exc)}): check that it "
        f"runs the same Ray version as this client, and if it uses token authentication, "
        f"{TOKEN_HINT}"
    )


def _host_port(address: str) -> tuple[str, int] | None:
    """(host, port) of a `host:port` address; None for the other forms Ray accepts."""
    if "://" in address or ":" not in address:
        return None
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        return None
    return host.strip("[]"), int(port)


@contextlib.contextmanager
def _quiet_stderr() -> Iterator[None]:
    """File descriptor 2 sent to /dev/null for the duration (C++ logging writes there)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _why(exc: OSError) -> str:
    if isinstance(exc, socket.timeout | TimeoutError):
        return f"no answer within {_CONNECT_TIMEOUT_S:g} s"
    if isinstance(exc, socket.gaierror):
        return "unknown host"
    return exc.strerror or type(exc).__name__.lower()


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
