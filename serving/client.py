"""A small typed client for listening tools.

    from serving.client import SocialCareClient

    with SocialCareClient("http://127.0.0.1:3000") as client:
        for prediction in client.predict([{"text": "Varför svarar ingen?", "id": "x-1"}]):
            print(prediction.id, prediction.labels, prediction.action.type)

Retries when the service is overloaded (503), cannot be reached or drops the connection
(its worker restarting), with exponential back-off and never sooner than the 503's
Retry-After: the default 6 retries wait about 30 s in all, longer than a worker takes to
come back after a crash. A request the service refuses (4xx) raises at once with the
service's explanation, since sending it again cannot help.
"""

import time
from collections.abc import Iterable, Sequence
from types import TracebackType

import httpx

from serving.api import ApiPost, PostPrediction, PredictRequest, PredictResponse
from socialcare.core.limits import MAX_POSTS


class ServiceError(RuntimeError):
    """The service answered with an error; ``status`` is its HTTP status, ``detail`` its body."""

    def __init__(self, status: int, detail: object):
        super().__init__(f"HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class SocialCareClient:
    def __init__(
        self,
        url: str = "http://127.0.0.1:3000",
        timeout: float = 10.0,
        retries: int = 6,
        backoff: float = 0.5,
        posts_per_request: int = MAX_POSTS,
        transport: httpx.BaseTransport | None = None,
    ):
        self.retries = retries
        self.backoff = backoff
        self.posts_per_request = posts_per_request
        self._http = httpx.Client(base_url=url, timeout=timeout, transport=transport)

    def predict(self, posts: Iterable[ApiPost | dict | str]) -> list[PostPrediction]:
        """Predictions for the posts, in their order (sent in chunks of ``posts_per_request``)."""
        results: list[PostPrediction] = []
        batch: list[ApiPost] = []
        for post in posts:
            batch.append(_as_post(post))
            if len(batch) == self.posts_per_request:
                results.extend(self.predict_batch(batch).predictions)
                batch = []
        if batch:
            results.extend(self.predict_batch(batch).predictions)
        return results

    def predict_batch(self, posts: Sequence[ApiPost]) -> PredictResponse:
        """One request: the full response, with the model tag and policy version."""
        body = PredictRequest(posts=list(posts)).model_dump(mode="json", exclude_none=True)
        response = self._send("POST", "/predict", json=body)
        return PredictResponse.model_validate(response.json())

    def is_ready(self) -> bool:
        try:
            return self._http.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    def wait_until_ready(self, timeout: float = 120.0, interval: float = 0.5) -> None:
        """Block until /readyz answers 200 (model loaded, warm-up done) or raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self._http.base_url} not ready after {timeout:.0f} s")
            time.sleep(interval)

    def _send(self, method: str, path: str, **kwargs) -> httpx.Response:
        for attempt in range(self.retries + 1):
            last = attempt == self.retries
            try:
                response = self._http.request(method, path, **kwargs)
            # Not reached, or the connection lost before the answer (a worker killed
            # mid-request): sending the posts again at worst queues a flagged one twice.
            except (httpx.NetworkError, httpx.ReadTimeout, httpx.RemoteProtocolError):
                if last:
                    raise
            else:
                if response.status_code != 503 or last:
                    if response.is_error:
                        raise ServiceError(response.status_code, _detail(response))
                    return response
                retry_after = response.headers.get("retry-after", "")
                if retry_after.isdigit():
                    time.sleep(max(0.0, int(retry_after) - self.backoff * 2**attempt))
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> "SocialCareClient":
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def _as_post(post: ApiPost | dict | str) -> ApiPost:
    if isinstance(post, ApiPost):
        return post
    if isinstance(post, str):
        return ApiPost(text=post)
    return ApiPost.model_validate(post)


def _detail(response: httpx.Response) -> object:
    try:
        return response.json()
    except ValueError:
        return response.text
