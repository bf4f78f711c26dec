"""FastAPI dependencies, one place: what a route may ask for, as `Annotated` aliases.

`create_app` builds what requests share (settings, the archive, the leaderboard cache, the engine
launcher, the validator, the shutdown flag) and keeps it on `app.state`; the routers never read
`app.state` themselves but take these aliases as parameters (`archive: ArchiveDep`), so a test can
swap one with `app.dependency_overrides[get_archive] = ...`.

`RequireRead` and `RequireWrite` are the bearer-token checks, for a router's or a route's
`dependencies=[...]`: writes need the token when `LOSSFORGE_API_TOKEN` is set, reads too when
`LOSSFORGE_API_READ_AUTH=true`. The token is compared in constant time and never echoed, logged
or put in a response.

The getters are async although they do no I/O: a sync dependency would cost every request a
trip to the threadpool. Nothing here builds anything.
"""

from __future__ import annotations

import secrets
import threading
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.boards import Boards
from api.launcher import Launcher
from api.settings import Settings
from discovery.archive import Archive
from discovery.service.validation import SharedValidator


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_archive(request: Request) -> Archive:
    return request.app.state.archive


async def get_boards(request: Request) -> Boards:
    return request.app.state.boards


async def get_launcher(request: Request) -> Launcher:
    return request.app.state.launcher


async def get_validator(request: Request) -> SharedValidator:
    return request.app.state.validator


async def get_stopping(request: Request) -> threading.Event:
    """Set when the server begins to stop: event streams end."""
    return request.app.state.stopping


SettingsDep = Annotated[Settings, Depends(get_settings)]
ArchiveDep = Annotated[Archive, Depends(get_archive)]
BoardsDep = Annotated[Boards, Depends(get_boards)]
LauncherDep = Annotated[Launcher, Depends(get_launcher)]
ValidatorDep = Annotated[SharedValidator, Depends(get_validator)]
StoppingDep = Annotated[threading.Event, Depends(get_stopping)]

_bearer = HTTPBearer(auto_error=False, description="LOSSFORGE_API_TOKEN, when the server sets one.")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


def _check(settings: Settings, credentials: HTTPAuthorizationCredentials | None) -> None:
    if settings.api_token is None:
        return
    expected = settings.api_token.get_secret_value().encode()
    given = credentials.credentials.encode() if credentials is not None else b""
    if not secrets.compare_digest(given, expected):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="this server needs an API token: send `Authorization: Bearer <token>`"
            if credentials is None
            else "the API token is wrong",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def require_write(settings: SettingsDep, credentials: Credentials) -> None:
    _check(settings, credentials)


async def require_read(settings: SettingsDep, credentials: Credentials) -> None:
    if settings.api_read_auth:
        _check(settings, credentials)


RequireRead = Depends(require_read)
RequireWrite = Depends(require_write)
