"""Bearer-token auth: writes need the token when `LOSSFORGE_API_TOKEN` is set; reads too when
`LOSSFORGE_API_READ_AUTH=true`. The token is compared in constant time and never echoed, logged
or put in a response."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.settings import Settings

_bearer = HTTPBearer(auto_error=False, description="LOSSFORGE_API_TOKEN, when the server sets one.")


def _check(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    settings: Settings = request.app.state.settings
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


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


# Async (they do no I/O): a sync dependency would cost every request a trip to the threadpool.
async def require_write(request: Request, credentials: Credentials) -> None:
    _check(request, credentials)


async def require_read(request: Request, credentials: Credentials) -> None:
    if request.app.state.settings.api_read_auth:
        _check(request, credentials)
