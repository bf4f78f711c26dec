"""Request bodies with a size cap: 413, with a sentence, before more than the cap is read.

Starlette reads a whole body into memory when a route asks for it. A router built with
`APIRouter(route_class=capped_route(...))` gets requests whose body is refused with 413 when its
Content-Length says it is too large (nothing is read), or as soon as a chunked body passes the
cap. Routes that never read their body are unaffected.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import HTTPException, Request, Response, status
from fastapi.routing import APIRoute
from starlette.types import Receive, Scope


def capped_route(max_bytes: int, message: str) -> type[APIRoute]:
    """A route class whose requests refuse bodies over `max_bytes` with 413 and `message`."""

    class CappedRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
            handler = super().get_route_handler()

            async def capped(request: Request) -> Response:
                capped_request = _CappedRequest(request.scope, request.receive, max_bytes, message)
                return await handler(capped_request)

            return capped

    return CappedRoute


class _CappedRequest(Request):
    def __init__(self, scope: Scope, receive: Receive, max_bytes: int, message: str) -> None:
        super().__init__(scope, receive)
        self._max_bytes = max_bytes
        self._too_large = message

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):  # Starlette's cache of the body, which json() reads too
            declared = self.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > self._max_bytes:
                raise self._refusal()
            chunks: list[bytes] = []
            size = 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > self._max_bytes:
                    raise self._refusal()
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    def _refusal(self) -> HTTPException:
        return HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=self._too_large)
