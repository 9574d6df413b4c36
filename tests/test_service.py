"""The prediction service: in-process through `to_asgi()`, and once over real HTTP."""

import json
import logging
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import httpx
import psutil
import pytest
from starlette.testclient import TestClient

from serving.service import MAX_BATCH_POSTS
from serving.settings import ServiceSettings
from socialcare.core import paths
from socialcare.core.answers import Answer, SentimentResult
from socialcare.core.labels import INTENTS, SENTIMENTS
from socialcare.core.limits import MAX_BODY_BYTES

ACTION_TYPES = {"respond", "respond_if_time", "like", "watch", "none"}


@pytest.fixture(scope="module")
def served_model(registered_baseline) -> str:
    return registered_baseline[0]


@pytest.fixture(scope="module")
def settings(service_settings) -> ServiceSettings:
    return service_settings


@pytest.fixture(scope="module")
def client(service_client):
    return service_client


def predict(client, *posts, **body):
    return client.post("/predict", json={"posts": list(posts), **body})


def test_contract_in_input_order(client, served_model):
    posts = [
        {"text": "Jag har väntat tre veckor på besked om min skada, helt oacceptabelt!",
         "id": "sv-1", "lang": "sv", "created_at": "2026-11-20T10:00:00Z",
         "channel": "facebook", "parent_text": "Hej!"},
        {"text": "Grazie mille, servizio impeccabile e velocissimo!", "id": "it-1"},
        {"text": "Hur gör jag för att byta betalningsdag?"},
    ]  # fmt: skip
    response = predict(client, *posts)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["model"] == served_model
    assert body["policy_version"]
    predictions = body["predictions"]
    assert [p["id"] for p in predictions] == ["sv-1", "it-1", None]
    for prediction in predictions:
        assert set(prediction["intents"]) == set(INTENTS)
        assert all(0.0 <= p <= 1.0 for p in prediction["intents"].values())
        assert set(prediction["labels"]) <= set(INTENTS)
        scores = prediction["sentiment"]["scores"]
        assert set(scores) == set(SENTIMENTS)
        assert sum(scores.values()) == pytest.approx(1.0, abs=1e-5)
        assert prediction["sentiment"]["label"] == max(scores, key=scores.get)
        assert prediction["action"]["type"] in {
            "respond",
            "respond_if_time",
            "like",
            "watch",
            "none",
        }
        assert prediction["action"]["reason"]
        assert prediction["needs_review"] == bool(prediction["review_reasons"])
    first, second, third = predictions
    assert first["lang"] == "sv"  # given
    assert second["lang"] == "it"  # detected
    assert third["lang"] == "sv"
    assert "complaint" in first["labels"]
    assert first["action"]["type"] == "respond"
    # A complaint is due within the hour of its publication (shipped policy).
    due = datetime.fromisoformat(first["action"]["due_by"])
    assert due == datetime.fromisoformat("2026-11-20T11:00:00+00:00")


@pytest.mark.parametrize("size", [2, MAX_BATCH_POSTS + 1])
def test_same_answer_alone_or_in_a_batch(client, size):
    # A request larger than a batch still goes to the model whole, in one call.
    texts = [
        "Ni har fel, självrisken är inte 5000 kr!",
        "Ma che scherzo è questo? 😂",
        "Varför har ingen svarat på min skadeanmälan?",
        "Grazie per l'aiuto veloce!",
    ] * (MAX_BATCH_POSTS // 4 + 1)
    texts = [f"{text} ({i})" for i, text in enumerate(texts[:size])]
    together = predict(client, *({"text": t} for t in texts)).json()["predictions"]
    for text, expected in zip(texts, together, strict=True):
        alone = predict(client, {"text": text}).json()["predictions"][0]
        assert alone["labels"] == expected["labels"]
        for name in INTENTS:
            assert alone["intents"][name] == pytest.approx(expected["intents"][name], abs=1e-6)


@pytest.mark.parametrize(
    "text",
    [
        "😂😂😂👍",
        "你们的理赔太慢了",
        "شكرا على المساعدة",
        "Hej\u0000 med\u0007 er\u202e",
        "Hej! Grazie mille, ni är bäst 🙏",
        "a",
    ],
)
def test_odd_but_valid_text_is_classified(client, text):
    response = predict(client, {"text": text})
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_other_language_is_flagged_and_queued_with_pii_masked(client, settings):
    from socialcare.core.review_queue import ReviewQueue

    text = "Why has nobody answered my claim? Write to anna.berg@example.com or +46 70 123 45 67"
    parent = "Ring Anna på 070-123 45 67"
    response = predict(client, {"text": text, "id": "en-flagged", "parent_text": parent})
    prediction = response.json()["predictions"][0]
    assert prediction["lang"] == "en"
    assert prediction["needs_review"]
    assert any(reason.startswith("language: en") for reason in prediction["review_reasons"])
    pending = ReviewQueue(settings.review_queue).pending()
    queued = [item for item in pending if item.post_id == "en-flagged"]
    assert len(queued) == 1
    assert "anna.berg@example.com" not in queued[0].text
    assert "123 45 67" not in queued[0].text
    assert queued[0].parent_text == "Ring Anna på [phone]"  # replies keep their parent
    assert queued[0].prediction["labels"] == prediction["labels"]


LONG = "x" * 5001


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"posts": [{"id": "no-text"}]}, ["posts", 0, "text"]),
        ({"posts": [{"text": ""}]}, ["posts", 0, "text"]),
        ({"posts": [{"text": "   \n\t "}]}, ["posts", 0, "text"]),
        ({"posts": [{"text": 5}]}, ["posts", 0, "text"]),
        ({"posts": [{"text": "ok", "lang": 3}]}, ["posts", 0, "lang"]),
        ({"posts": [{"text": "ok"}, {"text": None}]}, ["posts", 1, "text"]),
        ({"posts": [{"text": "ok", "created_at": "yesterday"}]}, ["posts", 0, "created_at"]),
        ({"posts": [{"text": "ok", "created_at": "2026-13-45T10:00:00Z"}]},
         ["posts", 0, "created_at"]),
        ({"posts": [{"text": LONG}]}, ["posts", 0, "text"]),
        ({"posts": [{"text": "ok"}] * 257}, ["posts"]),
        ({"posts": []}, ["posts"]),
        ({"posts": "hello"}, ["posts"]),
        ({"post": [{"text": "ok"}]}, ["posts"]),
    ],
)  # fmt: skip
def test_bad_input_is_a_400_naming_the_field(client, body, field):
    response = client.post("/predict", json=body)
    assert response.status_code == 400, response.text
    locations = [error["loc"] for error in response.json()["detail"]]
    assert field in locations
    assert LONG not in response.text  # inputs are never echoed back


@pytest.mark.parametrize(
    "raw", [b'{"posts": [{"text": "ok"}', b"not json", b"", b'[{"text": "ok"}]']
)
def test_broken_json_is_a_400(client, raw):
    response = client.post("/predict", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 400, response.text


def test_post_text_never_reaches_the_logs(client, caplog, monkeypatch):
    """Not the text, not an e-mail address or a phone number in it: at any level, on an
    answer, on every kind of 4xx, and when the classifier fails."""
    marker = "Hemligt-7f3a9 personligt innehåll, maila anna.berg@example.se eller 070-987 65 43"
    private = ("Hemligt-7f3a9", "anna.berg", "987 65 43")
    raw = json.dumps({"posts": [{"text": marker, "id": "a"}]}).encode()
    with caplog.at_level(logging.DEBUG):
        predict(client, {"text": marker})
        predict(client, {"text": marker, "created_at": "not a date"})
        predict(client, {"text": marker, "lang": "xx"})
        predict(client, {"text": marker + "x" * 5000})
        client.post("/predict", content=raw.replace(b'"id": "a"', b'"id": "a", "id": "b"'),
                    headers={"Content-Type": "application/json"})  # fmt: skip
        client.post("/predict", content=raw, headers={"Content-Type": "text/plain"})
        client.post("/predict", content=raw, headers={"Content-Type": "application/json",
                                                      "Content-Encoding": "gzip"})  # fmt: skip

        def failing(predictor, posts):
            raise RuntimeError("the model failed")

        monkeypatch.setattr("serving.service.classify_posts", failing)
        assert predict(client, {"text": marker}).status_code == 500  # a bug of ours: a 500
    assert caplog.records  # the logs were captured
    for secret in private:
        assert secret not in caplog.text


def test_health_and_docs(client):
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 200
    spec = client.get("/docs.json").json()
    assert "/predict" in spec["paths"]
    assert client.get("/").status_code == 200


def test_client_against_in_process_service(client):
    """The typed client speaks the same contract (ASGI transport, no network)."""
    from serving.client import ServiceError, SocialCareClient

    transport = _WsgiLikeTransport(client)
    with SocialCareClient("http://testserver", transport=transport, posts_per_request=2) as api:
        predictions = api.predict(["Varför svarar ingen?", {"text": "Bravi!", "id": "b"}, "Ok"])
        assert [p.id for p in predictions] == [None, "b", None]
        with pytest.raises(ServiceError) as refused:
            api.predict_batch([_unchecked_post("   ")])
        assert refused.value.status == 400


def _unchecked_post(text: str):
    from serving.api import ApiPost

    return ApiPost.model_construct(text=text)


class _WsgiLikeTransport:
    """An httpx transport that forwards requests to the in-process TestClient."""

    def __init__(self, test_client: TestClient):
        self._client = test_client

    def handle_request(self, request):
        import httpx

        response = self._client.request(
            request.method, request.url.path, content=request.read(), headers=request.headers
        )
        return httpx.Response(response.status_code, content=response.content,
                              headers=response.headers)  # fmt: skip

    def close(self) -> None:
        pass


def test_real_http_serve_and_client(served_model, start_service):
    """`socialcare serve` on a free port, /readyz, then /predict through the client."""
    from serving.client import SocialCareClient

    service = start_service(served_model)
    with SocialCareClient(service.url, timeout=30) as api:
        predictions = api.predict(
            [{"text": "Varför har ingen svarat på min skadeanmälan?", "id": "q"}]
        )
        metrics = httpx.get(f"{service.url}/metrics", timeout=10)
    assert predictions[0].id == "q"
    assert predictions[0].lang == "sv"
    assert metrics.status_code == 200
    assert 'endpoint="/predict"' in metrics.text  # Prometheus counts our requests
    assert 'socialcare_posts_total{lang="sv"} 1.0' in metrics.text  # and our answers
    assert service.queue.exists()  # the setting reached the service (`--arg review_queue=...`)
    server = psutil.Process(service.process.pid)
    listening = {
        connection.laddr.ip
        for process in [server, *server.children(recursive=True)]
        for connection in process.net_connections(kind="tcp")
        if connection.status == psutil.CONN_LISTEN and connection.laddr.port == service.port
    }
    assert listening == {"127.0.0.1"}  # loopback only, unless --host says otherwise
    service.stop()
    served_log = service.log_path.read_text(encoding="utf-8")
    assert "skadeanmälan" not in served_log
    # The policy's review rate became a band from the model's validation posts.
    assert "to flag 8% of the model's validation posts" in served_log


def test_bad_policy_fails_at_start_with_a_clear_message(served_model, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("version: 1\nrules: [\n", encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "socialcare.cli", "serve", "--model", served_model,
         "--policy", str(policy)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 1
    assert str(policy) in result.stderr


def _answer(lang: str | None, truncated: bool) -> Answer:
    scores = dict.fromkeys(SENTIMENTS, 1 / 3)
    return Answer(
        id=None, lang=lang, labels=[], intents=dict.fromkeys(INTENTS, 0.1),
        sentiment=SentimentResult(label="neutral", scores=scores),
        thresholds=dict.fromkeys(INTENTS, 0.5), truncated=truncated,
    )  # fmt: skip


def test_review_reasons_besides_uncertainty():
    assert _answer("it", True).other_review_reasons() == [
        "truncated: the text is longer than the model reads"
    ]
    assert _answer("de", False).other_review_reasons()[0].startswith("language: de")
    assert _answer(None, False).other_review_reasons() == []  # undetermined: not a reason


def test_policy_file_path_is_the_shipped_one_by_default():
    assert Path(ServiceSettings().policy) == paths.POLICY_FILE


def _answers(*statuses: int):
    """An httpx transport answering /predict with these statuses in turn (then 200s);
    0: the connection reset before an answer (a worker killed mid-request)."""
    calls = []

    def handle(request):
        import httpx

        calls.append(request.url.path)
        status = statuses[len(calls) - 1] if len(calls) <= len(statuses) else 200
        if status == 0:
            raise httpx.ReadError("[Errno 104] Connection reset by peer", request=request)
        if status != 200:
            return httpx.Response(status, json={"error": "busy"})
        posts = json.loads(request.content)["posts"]
        prediction = {
            "id": posts[0].get("id"), "lang": "sv", "labels": [],
            "intents": dict.fromkeys(INTENTS, 0.1),
            "sentiment": {"label": "neutral", "scores": dict.fromkeys(SENTIMENTS, 1 / 3)},
            "action": {"type": "none", "reason": "no intent: nothing to do"},
            "needs_review": False,
        }  # fmt: skip
        return httpx.Response(
            200, json={"model": "m:1", "policy_version": "v", "predictions": [prediction]}
        )

    return httpx.MockTransport(handle), calls


def test_client_retries_503_and_lost_connections_but_not_400():
    from serving.client import ServiceError, SocialCareClient

    transport, calls = _answers(503, 0)
    with SocialCareClient("http://x", transport=transport, retries=3, backoff=0.001) as api:
        assert api.predict([{"text": "Hej", "id": "a"}])[0].id == "a"
    assert len(calls) == 3

    transport, calls = _answers(503, 503, 503)
    with SocialCareClient("http://x", transport=transport, retries=2, backoff=0.001) as api:
        with pytest.raises(ServiceError) as gave_up:
            api.predict(["Hej"])
    assert gave_up.value.status == 503 and len(calls) == 3

    transport, calls = _answers(400)
    with SocialCareClient("http://x", transport=transport, retries=3, backoff=0.001) as api:
        with pytest.raises(ServiceError):
            api.predict(["Hej"])
    assert len(calls) == 1


def test_serve_passes_its_settings_as_bento_arguments(tmp_path):
    from serving.commands import ServeOptions, service_settings

    queue = tmp_path / "queue.sqlite"
    opts = ServeOptions(model="socialcare-classifier:v1", review_queue=queue, max_posts=9)
    assert service_settings(opts).bento_args() == [
        "--arg", "model=socialcare-classifier:v1",
        "--arg", f"policy={paths.POLICY_FILE}",
        "--arg", f"review_queue={queue}",
        "--arg", "max_posts=9",
        "--arg", "max_text_chars=5000",
        "--arg", f"max_body_bytes={MAX_BODY_BYTES}",
    ]  # fmt: skip
    with pytest.raises(ValueError, match="--max-text-chars"):
        service_settings(ServeOptions(max_text_chars=0))


def test_request_limits_come_from_the_settings(settings):
    from serving.api import request_model

    request = request_model(2, 10)
    schema = request.model_json_schema()
    assert schema["properties"]["posts"]["maxItems"] == 2
    assert schema["$defs"]["ApiPost"]["properties"]["text"]["maxLength"] == 10
    assert settings.max_posts == 256 and settings.max_text_chars == 5000  # the defaults
