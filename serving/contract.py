"""The edge of `POST /predict`: every request a client can send gets an answer the OpenAPI
document describes, and never a 5xx for a bad request.

BentoML parses request bodies itself, and some malformed ones reach its code paths that
answer 500 (a multipart type without a boundary), read them whole whatever their size, or
answer with a body its own schema does not describe. ``RequestGuard`` stands in front of
it, as ASGI middleware, and checks a request in this order before anything parses it:

1. method: POST only (405, with ``Allow``);
2. ``Content-Type``: JSON only (415);
3. ``Content-Encoding``: none or gzip, which is decompressed here (415 for others, 400 for
   a body that is not the gzip it claims to be);
4. size: ``Content-Length``, then the bytes read, then the decompressed bytes, each
   against ``max_body_bytes`` (413, before any parsing);
5. the request schema, by pydantic in strict JSON mode (400 with each field's path), which
   also refuses invalid UTF-8, lone surrogates, bad JSON and deep nesting;
6. what JSON allows but a request must not have: duplicate keys and NaN or Infinity
   anywhere in the body (400).

Only a request that passes reaches BentoML, with its body decompressed. Every error body
is one model, ``ApiError`` (serving.api). ``GET /docs.json`` is rewritten on its way out
so that the document says all of this (``openapi_document``).
"""

import gzip
import json
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from pydantic import BaseModel, ValidationError

from serving.api import ApiError, FieldError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

API_PATH = "/predict"
SPEC_PATH = "/docs.json"
# A 503 tells the client to retry after this many seconds (a backlog drains in a few).
RETRY_AFTER_S = 2
# Every error /predict may answer, as the OpenAPI document lists them.
ERROR_RESPONSES = {
    "400": "The request is not valid: bad JSON, or a field breaks the schema (see detail)",
    "413": "The body is larger than the service reads (--max-body-bytes), after gzip",
    "415": "Content-Type is not application/json, or Content-Encoding is not gzip",
    "503": "The service cannot answer now (overloaded: the model is behind its queue); "
    "retry after Retry-After seconds",
}


class Refused(Exception):
    """A request refused at the edge: its HTTP status and body."""

    def __init__(self, status: int, error: str, detail: list[FieldError] | None = None):
        super().__init__(error)
        self.status = status
        self.body = ApiError(error=error, detail=detail or [])


class RequestGuard:
    """ASGI middleware that checks `POST /predict` requests before BentoML sees them."""

    def __init__(self, app: ASGIApp, *, request_model: type[BaseModel], max_body_bytes: int):
        self.app = app
        self.request_model = request_model
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
        elif scope["path"] == SPEC_PATH and scope["method"] == "GET":
            await self._document(scope, receive, send)
        elif scope["path"] == API_PATH:
            await self._predict(scope, receive, send)
        else:
            await self.app(scope, receive, send)

    async def _predict(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            body = await self._checked_body(scope, receive)
        except Refused as refused:
            headers = {"allow": "POST"} if refused.status == 405 else {}
            await _send_error(send, refused.status, refused.body, headers)
            return
        scope = dict(scope)
        scope["headers"] = [
            (name, value)
            for name, value in scope["headers"]
            if name not in (b"content-encoding", b"content-length")
        ] + [(b"content-length", str(len(body)).encode())]
        await self.app(scope, _replay(body, receive), _retryable_503(send))

    async def _checked_body(self, scope: Scope, receive: Receive) -> bytes:
        if scope["method"] != "POST":
            raise Refused(405, f"{scope['method']} is not allowed here; use POST")
        headers = _headers(scope)
        media_type = headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type != "application/json":
            raise Refused(415, f"Content-Type must be application/json, got {media_type!r}")
        encoding = headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("identity", "gzip"):
            raise Refused(415, f"Content-Encoding {encoding!r} is not supported; use gzip or none")
        declared = headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            raise self._too_large()
        body = await self._read(receive)
        if encoding == "gzip":
            body = self._gunzip(body)
        self._check_json(body)
        return body

    def _too_large(self) -> Refused:
        return Refused(413, f"the body is larger than {self.max_body_bytes} bytes")

    async def _read(self, receive: Receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise Refused(400, "the client closed the connection before the body ended")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                raise self._too_large()
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _gunzip(self, body: bytes) -> bytes:
        # Decompressed in bounded steps, so a small bomb cannot fill the memory.
        inflater = zlib.decompressobj(wbits=31)  # 31: gzip header and trailer
        try:
            data = inflater.decompress(body, self.max_body_bytes + 1)
            if len(data) > self.max_body_bytes or inflater.unconsumed_tail:
                raise self._too_large()
            if not inflater.eof or inflater.unused_data:
                raise zlib.error("incomplete or trailing data")
        except (zlib.error, gzip.BadGzipFile):
            raise Refused(400, "the body is not valid gzip, as Content-Encoding says") from None
        return data

    def _check_json(self, body: bytes) -> None:
        try:
            self.request_model.model_validate_json(body, strict=True)
        except ValidationError as err:
            detail = [_field_error(error) for error in err.errors(include_input=False)]
            raise Refused(400, "the request is not valid; see detail", detail) from None
        try:
            json.loads(body, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
        except ValueError as err:
            detail = [FieldError(loc=[], msg=str(err), type="json_invalid")]
            raise Refused(400, str(err), detail) from None

    async def _document(self, scope: Scope, receive: Receive, send: Send) -> None:
        start: Message = {}
        chunks: list[bytes] = []

        async def keep(message: Message) -> None:
            if message["type"] == "http.response.start":
                start.update(message)
            else:
                chunks.append(message.get("body", b""))

        await self.app(scope, receive, keep)
        if start.get("status") != 200:
            await _send_json(send, start.get("status", 500), b"".join(chunks), {})
            return
        document = openapi_document(json.loads(b"".join(chunks)), self.request_model)
        await _send_json(send, 200, json.dumps(document).encode(), {})


def openapi_document(spec: dict, request_model: type[BaseModel]) -> dict:
    """BentoML's OpenAPI document, corrected to say what the service does.

    - 3.1.0: pydantic writes JSON Schema 2020-12 (``{"type": "null"}``), OpenAPI 3.1's dialect;
    - /predict's body is required (a request without one is refused);
    - /predict's error responses are ``ApiError`` with their real statuses, 503's
      ``Retry-After`` header among them; BentoML's own error schemas go.
    """
    spec["openapi"] = "3.1.0"
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    for unused in ("InvalidArgument", "NotFound", "InternalServerError"):
        schemas.pop(unused, None)
    error_schema = ApiError.model_json_schema(ref_template="#/components/schemas/{model}")
    schemas.update(error_schema.pop("$defs", {}))
    schemas["ApiError"] = error_schema
    error_body = {"application/json": {"schema": {"$ref": "#/components/schemas/ApiError"}}}
    operation = spec["paths"][API_PATH]["post"]
    operation["requestBody"]["required"] = True
    operation["responses"] = {
        "200": operation["responses"]["200"],
        **{
            status: {"description": description, "content": error_body}
            for status, description in ERROR_RESPONSES.items()
        },
    }
    operation["responses"]["503"]["headers"] = {
        "Retry-After": {
            "description": "seconds to wait before retrying",
            "schema": {"type": "integer", "minimum": 1},
        }
    }
    operation["description"] += (
        " Unknown fields are ignored; duplicate keys, NaN and Infinity are refused. The body"
        " may be gzip-compressed (Content-Encoding: gzip)."
    )
    return spec


def _field_error(error: Any) -> FieldError:
    loc = list(error["loc"])
    kind = error["type"]
    if kind == "string_pattern_mismatch" and loc and loc[-1] in ("text", "parent_text"):
        message = "must not be empty or whitespace only"
    elif kind == "literal_error" and loc and loc[-1] == "lang":
        message = "must be an ISO 639-1 code in lower case (sv, it, en...), or left out"
    else:
        message = str(error["msg"]).removeprefix("Value error, ")
    return FieldError(loc=loc, msg=message, type=kind)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [key for key, _ in pairs]
    repeated = sorted({key for key in keys if keys.count(key) > 1})
    if repeated:
        raise ValueError(f"duplicate keys in one object: {', '.join(repeated)}")
    return dict(pairs)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON; send a number or a string")


def _headers(scope: Scope) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope["headers"]
    }


def _replay(body: bytes, receive: Receive) -> Receive:
    """The checked body, as BentoML reads it: one message; then the client's own messages
    (a later disconnect must still reach whoever listens for it)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay


def _retryable_503(send: Send) -> Send:
    """``send`` that turns BentoML's 503 (the model cannot answer now) into ApiError with
    Retry-After, and passes everything else on."""
    refused = False

    async def wrapped(message: Message) -> None:
        nonlocal refused
        if message["type"] == "http.response.start" and message["status"] == 503:
            refused = True
            return
        if refused:
            if not message.get("more_body", False):
                body = ApiError(error=ERROR_RESPONSES["503"])
                await _send_error(send, 503, body, {"retry-after": str(RETRY_AFTER_S)})
            return
        await send(message)

    return wrapped


async def _send_error(send: Send, status: int, body: ApiError, headers: dict[str, str]) -> None:
    await _send_json(send, status, body.model_dump_json().encode(), headers)


async def _send_json(send: Send, status: int, body: bytes, headers: dict[str, str]) -> None:
    raw = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.encode(), value.encode()) for name, value in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})
