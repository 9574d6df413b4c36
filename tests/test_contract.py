"""The HTTP contract of `POST /predict`: what the OpenAPI document says is what the service
does, no request a client can send gets a 5xx, and every error has one body."""

import gzip
import json
import subprocess
import sys

import pytest
from jsonschema import Draft202012Validator
from starlette.testclient import TestClient

from serving.api import ApiError
from socialcare.core.limits import MAX_BODY_BYTES, MAX_POSTS, MAX_TEXT_CHARS

JSON = {"Content-Type": "application/json"}
GOOD = b'{"posts": [{"text": "Hej, n\\u00e4r f\\u00e5r jag svar?"}]}'


@pytest.fixture(scope="module")
def client(service_client) -> TestClient:
    return service_client


@pytest.fixture(scope="module")
def spec(client) -> dict:
    response = client.get("/docs.json")
    assert response.status_code == 200
    return response.json()


def conforms(spec: dict, status: int, body: object) -> None:
    """``body`` is valid against the document's schema for /predict's ``status`` answer."""
    pointer = f"#/paths/~1predict/post/responses/{status}/content/application~1json/schema"
    Draft202012Validator({**spec, "$ref": pointer}).validate(body)


def refused(response, status: int) -> ApiError:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    return ApiError.model_validate_json(response.content)


def huge_gzip() -> bytes:
    # A small body that inflates past the limit: a gzip bomb.
    padding = b" " * (MAX_BODY_BYTES + 10)
    return gzip.compress(b'{"posts": [{"text": "hej"}], "x": "' + padding + b'"}')


@pytest.mark.parametrize(
    "name, content, headers, status",
    [
        ("multipart without boundary", b"x", {"Content-Type": "multipart/form-data"}, 415),
        ("form", b"posts=x", {"Content-Type": "application/x-www-form-urlencoded"}, 415),
        ("plain text", b"hej", {"Content-Type": "text/plain"}, 415),
        ("no content type", GOOD, {}, 415),
        ("unknown encoding", GOOD, {**JSON, "Content-Encoding": "br"}, 415),
        ("gzip that is not gzip", GOOD, {**JSON, "Content-Encoding": "gzip"}, 400),
        ("truncated gzip", gzip.compress(GOOD)[:-6], {**JSON, "Content-Encoding": "gzip"}, 400),
        ("gzip bomb", huge_gzip(), {**JSON, "Content-Encoding": "gzip"}, 413),
        ("huge body", b"[" + b" " * MAX_BODY_BYTES + b"]", JSON, 413),
        ("empty body", b"", JSON, 400),
        ("broken JSON", b'{"posts": [', JSON, 400),
        ("deep nesting", b'{"posts": ' + b"[" * 10_000 + b"]" * 10_000 + b"}", JSON, 400),
        ("invalid UTF-8", b'{"posts": [{"text": "\xff\xfe"}]}', JSON, 400),
        ("lone surrogate", b'{"posts": [{"text": "ok \\ud800"}]}', JSON, 400),
        ("NaN as text", b'{"posts": [{"text": NaN}]}', JSON, 400),
        ("Infinity in an unknown field", b'{"posts": [{"text": "ok"}], "x": Infinity}', JSON, 400),
        ("number as text", b'{"posts": [{"text": 12}]}', JSON, 400),
        ("duplicate keys", b'{"posts": [{"text": "ok", "text": "hm"}]}', JSON, 400),
        ("naive date", b'{"posts": [{"text": "ok", "created_at": "2026-11-20T10:00:00"}]}',
         JSON, 400),
        ("date as a number", b'{"posts": [{"text": "ok", "created_at": 1700000000}]}', JSON, 400),
        ("upper-case language", b'{"posts": [{"text": "ok", "lang": "SV"}]}', JSON, 400),
        ("array body", b'[{"text": "ok"}]', JSON, 400),
    ],
)  # fmt: skip
def test_bad_requests_get_a_4xx_with_one_error_body(client, spec, name, content, headers, status):
    response = client.post("/predict", content=content, headers=headers)
    error = refused(response, status)
    assert error.error
    conforms(spec, status, response.json())


def test_errors_name_the_field_without_echoing_it(client):
    secret = "Hemligt 070-1234567 anna@example.se"
    body = {"posts": [{"text": "ok"}, {"text": secret, "lang": "xx"}, {"text": " \u2003"}]}
    error = refused(client.post("/predict", json=body), 400)
    problems = {tuple(item.loc): item.msg for item in error.detail}
    assert "ISO 639-1" in problems[("posts", 1, "lang")]
    assert problems[("posts", 2, "text")] == "must not be empty or whitespace only"
    assert "070-1234567" not in client.post("/predict", json=body).text


def test_other_methods_are_405_with_allow(client):
    response = client.get("/predict")
    assert refused(response, 405)
    assert response.headers["allow"] == "POST"


def test_gzip_bodies_and_unknown_fields_are_accepted(client, spec):
    body = json.dumps({"posts": [{"text": "Grazie, tutto ok!", "likes": 3}], "source": "x"})
    response = client.post(
        "/predict",
        content=gzip.compress(body.encode()),
        headers={**JSON, "Content-Encoding": "gzip"},
    )
    assert response.status_code == 200, response.text
    conforms(spec, 200, response.json())
    assert response.json()["predictions"][0]["lang"] == "it"


def test_the_document_states_the_limits_and_the_errors(spec):
    schemas = spec["components"]["schemas"]
    post = schemas["ApiPost"]["properties"]
    assert post["text"]["maxLength"] == MAX_TEXT_CHARS
    assert post["text"]["minLength"] == 1 and post["text"]["pattern"]
    assert "en" in post["lang"]["anyOf"][0]["enum"] and "SV" not in post["lang"]["anyOf"][0]["enum"]
    assert post["created_at"]["anyOf"][0]["format"] == "date-time"
    operation = spec["paths"]["/predict"]["post"]
    request = operation["requestBody"]
    assert request["required"] is True
    assert request["content"]["application/json"]["schema"]["properties"]["posts"]["maxItems"] == (
        MAX_POSTS
    )
    responses = operation["responses"]
    assert set(responses) == {"200", "400", "413", "415", "503"}
    for status in ("400", "413", "415", "503"):
        schema = responses[status]["content"]["application/json"]["schema"]
        assert schema == {"$ref": "#/components/schemas/ApiError"}
    assert "Retry-After" in responses["503"]["headers"]
    assert not {"InvalidArgument", "NotFound", "InternalServerError"} & set(schemas)


def test_a_pattern_refusal_and_pydantics_refusal_agree(client):
    """The pattern the document states is the rule the service applies, character by
    character: a client that checks the pattern is never refused for its text."""
    import re

    from socialcare.core.schema import NON_BLANK_PATTERN, not_blank

    for code in [*range(0, 0x40), 0x85, 0xA0, 0x1680, 0x180E, *range(0x2000, 0x2010), 0x3000]:
        char = chr(code)
        matches = re.search(NON_BLANK_PATTERN, char) is not None
        try:
            not_blank(char)
            accepted = True
        except ValueError:
            accepted = False
        assert matches == accepted, hex(code)


def test_a_model_behind_its_queue_is_a_retryable_503(spec):
    """Posts that waited too long for the model (a backlog) give 503 with Retry-After and
    the error body, never a 500 (the queue itself: tests/test_batching.py)."""
    import asyncio

    from bentoml.exceptions import ServiceUnavailable

    from serving.batching import QueueTimeout
    from serving.contract import RETRY_AFTER_S, RequestGuard
    from serving.service import SocialCareService

    class BehindQueue:
        @staticmethod
        async def classify(posts):
            raise QueueTimeout("waited over 10 s")

    service = SocialCareService.__new__(SocialCareService)
    service.model_queue = BehindQueue()
    with pytest.raises(ServiceUnavailable):
        asyncio.run(service._classify([]))

    async def app(scope, receive, send):  # what BentoML answers for ServiceUnavailable
        await receive()
        await send({"type": "http.response.start", "status": 503, "headers": []})
        await send({"type": "http.response.body", "body": b'{"error": "x"}'})

    from serving.api import PredictRequest

    guarded = RequestGuard(app, request_model=PredictRequest, max_body_bytes=MAX_BODY_BYTES)
    response = TestClient(guarded).post("/predict", content=GOOD, headers=JSON)
    refused(response, 503)
    assert response.headers["retry-after"] == str(RETRY_AFTER_S)
    conforms(spec, 503, response.json())


def test_schemathesis_finds_nothing(registered_baseline, start_service, tmp_path):
    """schemathesis, all checks, a fixed seed and a bounded number of cases, against a real
    `socialcare serve`: no 5xx, every answer as documented, schema-valid data accepted,
    schema-invalid data refused."""
    service = start_service(registered_baseline[0])
    command = [
        sys.executable, "-m", "schemathesis.cli", "run", f"{service.url}/docs.json",
        "--checks", "all", "--seed", "20261130", "--max-examples", "60", "--workers", "1",
        "--report", "junit", "--report-dir", str(tmp_path / "schemathesis"),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout
    assert "Traceback" not in service.log()  # and nothing went wrong inside
