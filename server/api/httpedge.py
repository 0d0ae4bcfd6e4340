"""The HTTP edge: what a request may look like before any route sees it.

Two gates, each the one place for its kind of input:

- `bounded_protocol`: uvicorn's httptools protocol with bounds on the request head (the
  request line and headers together, each header, how many). The C parser buffers a
  header until it ends, so without a bound one endless header grows the process without
  limit; past a bound the client gets `431` with a one-line JSON error and the
  connection is closed.
- `StrictJSONRoute`: every JSON request body is decoded by one strict decoder. Python's
  `json` turns `"\\ud800"` into a lone surrogate that nothing downstream can encode (the
  database, a log line), so one stray escape was a 500; the strict decoder refuses it
  (and invalid UTF-8, NaN and absurd nesting) before validation, as a `400`.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Coroutine, Optional

import pydantic_core
from fastapi import Request, Response
from fastapi.routing import APIRoute
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from server.config import Limits

#: How long a refused connection is drained before it is closed.
LINGER_SECONDS = 2.0


class HeadTooLarge(Exception):
    """Raised inside a parser callback to stop parsing; the protocol answers 431."""


def bounded_protocol(limits: Limits) -> type:
    """An httptools protocol class that refuses request heads past `limits`."""

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        _head_bytes = 0
        _header_count = 0
        _in_head = True
        #: Heads and messages completed: a chunk during which one completed is not all head.
        _heads_done = 0
        _buffered = 0
        _refusal: Optional[str] = None

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._head_bytes = self._header_count = 0
            self._in_head = True

        def on_url(self, url: bytes) -> None:
            self._count(len(url))
            super().on_url(url)

        def on_header(self, name: bytes, value: bytes) -> None:
            self._header_count += 1
            if self._header_count > limits.max_header_count:
                self._stop(f"more than {limits.max_header_count} request headers")
            if len(name) + len(value) > limits.max_header_bytes:
                self._stop(f"the {name.decode('latin-1')[:40]!r} header is longer than "
                           f"{limits.max_header_bytes} bytes")
            self._count(len(name) + len(value) + 4)
            super().on_header(name, value)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._heads_done += 1
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._in_head = True
            self._heads_done += 1
            super().on_message_complete()

        def data_received(self, data: bytes) -> None:
            if self._refusal is not None:
                return
            heads_before = self._heads_done
            super().data_received(data)
            # Still inside a head the parser has not finished: all of this chunk is buffered
            # head (a header not yet ended never reaches on_header), so count it here too.
            if self._refusal is None and self._in_head and self._heads_done == heads_before:
                self._buffered += len(data)
                if self._buffered > limits.max_request_head_bytes:
                    self._refuse(f"the request head is longer than {limits.max_request_head_bytes} bytes")
            elif self._heads_done != heads_before:
                self._buffered = 0

        def _count(self, size: int) -> None:
            self._head_bytes += size
            if self._head_bytes > limits.max_request_head_bytes:
                self._stop(f"the request head is longer than {limits.max_request_head_bytes} bytes")

        def _stop(self, why: str) -> None:
            self._refusal = why
            raise HeadTooLarge(why)

        def send_400_response(self, msg: str) -> None:
            # The parser's own refusals (a Content-Length that is not digits, a broken request
            # line) get the API's one-line JSON error too, not uvicorn's plain text.
            if self._refusal is None:
                self._refuse("the request is not valid HTTP/1.1 (the request line or a header is "
                             "malformed)", 400)
            else:
                self._refuse(self._refusal)

        def _refuse(self, why: str, status: int = 431) -> None:
            self._refusal = why
            if self.transport.is_closing():
                return
            try:
                head_only = self.parser.get_method() == b"HEAD"
            except Exception:  # noqa: BLE001 - the request line itself may be what was too long
                head_only = False
            body = b"" if head_only else json.dumps({"error": why}).encode() + b"\n"
            self.transport.write(
                (b"HTTP/1.1 431 Request Header Fields Too Large\r\n" if status == 431 else
                 b"HTTP/1.1 400 Bad Request\r\n") +
                b"content-type: application/json\r\n"
                b"content-length: " + str(len(body)).encode() + b"\r\n"
                b"connection: close\r\n\r\n" + body)
            # Closing with the rest of the head unread would reset the connection before the
            # client reads the answer: end our side, discard what still comes, close soon.
            if self.transport.can_write_eof():
                self.transport.write_eof()
            self.loop.call_later(LINGER_SECONDS, self.transport.close)

    return BoundedHttpToolsProtocol


class StrictRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = pydantic_core.from_json(body, allow_inf_nan=False)
            except ValueError as exc:
                # FastAPI turns a JSONDecodeError into its request-validation error.
                raise json.JSONDecodeError(str(exc), body.decode("utf-8", "replace"), 0) from None
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose JSON body goes through the strict decoder."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictRequest(request.scope, request.receive))

        return strict
