"""The prediction service: `POST /predict` says what each post is and what to do about it.

Two BentoML services in one Bento:
- ``Classifier`` holds the model and answers batches through the one path from posts to
  answers (socialcare.runtime.classify: language detection, the language's thresholds,
  the Answer record). Its ``classify`` API is batchable, so posts from many concurrent
  requests reach the model together (adaptive batching).
- ``SocialCare`` is the front door: validation, the response policy, the review queue.
  It calls ``Classifier`` and never touches the model itself, so the model process does
  nothing but inference.

Settings (serving.settings.ServiceSettings: model, policy, review queue, request limits)
are BentoML arguments, read once when BentoML first asks for a service:
`bentoml serve serving.service:SocialCare --arg model=TAG ...` (what `socialcare serve`
runs), or `bentoml build --arg ...`, which a built Bento keeps. ``build_services(settings)``
makes the two services from settings given directly (the tests). Post text is never logged.
"""

import logging
import threading
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import anyio
import bentoml
from bentoml.exceptions import BentoMLException, ServiceUnavailable
from bentoml.models import BentoModel
from bentoml.validators import ContentType

from serving.api import PostPrediction, PredictResponse, request_model
from serving.contract import RequestGuard
from serving.metrics import service_metrics
from serving.policy import Policy, load_policy
from serving.review_writer import ReviewWriter
from serving.settings import ServiceSettings
from socialcare.core.answers import Answer
from socialcare.core.review_queue import ReviewItem
from socialcare.core.schema import IncomingPost
from socialcare.runtime.classify import classify_posts
from socialcare.runtime.resolver import model_info

logger = logging.getLogger("socialcare.service")

# Adaptive batching: at most this many posts per model call (64 keeps one call near
# 100 ms on 2 cores). BentoML sizes the batching window itself from observed latencies;
# MAX_QUEUE_MS only caps how long a post may queue before the classifier answers 503
# ("overloaded", which the client retries), so bursts queue instead of failing.
MAX_BATCH_POSTS = 64
MAX_QUEUE_MS = 10_000
# Requests with at least this many posts go to the model as they are, not through the
# batching queue (on CPU, batches beyond ~8 posts gain little).
DIRECT_MIN_POSTS = 8
WARM_UP_POSTS = (
    IncomingPost(text="Hej, när får jag svar på min skadeanmälan?"),
    IncomingPost(text="Grazie mille, servizio ottimo!"),
)
SERVICES = ("Classifier", "SocialCare")
# The classifier's answers, typed JSON: without a declared media type BentoML derives it
# from the list's JSON schema, built anew for every response (5% of the classifier's CPU
# time at one post a request).
Answers = Annotated[list[Answer], ContentType("application/json")]
# How long /readyz waits for the classifier's own /readyz.
READY_TIMEOUT_S = 2


class ClassifierWorker:
    """The model, loaded once per worker, answering batches of posts."""

    model: BentoModel  # the served model; build_services sets it

    def __init__(self) -> None:
        from socialcare.runtime.predictor import Predictor

        self.predictor = Predictor(Path(self.model.path), tag=str(self.model.tag))
        # One model call at a time: each already uses every core, and two at once would
        # only fight over them.
        self._model_lock = threading.Lock()
        self._classify(WARM_UP_POSTS)  # the first call pays the set-up (and the detector's)
        logger.info("model %s loaded and warmed up", self.predictor.tag)

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_POSTS, max_latency_ms=MAX_QUEUE_MS)
    def classify(self, posts: list[IncomingPost]) -> Answers:
        """Posts of small requests, gathered from concurrent callers (adaptive batching)."""
        return self._classify(posts)

    @bentoml.api
    def classify_request(self, posts: list[IncomingPost]) -> Answers:
        """The posts of one large request: already a batch, so they skip the batching queue,
        whose learned wait (it grows under bursts) would only delay them."""
        return self._classify(posts)

    def _classify(self, posts: Sequence[IncomingPost]) -> list[Answer]:
        # Language detection (~0.5 ms a post, every core) runs under the lock too: it is
        # part of the one path, and would only compete with a model call beside it.
        with self._model_lock:
            return classify_posts(self.predictor, posts)


class Front:
    """Classifies posts and applies the insurer's response policy."""

    # Set by build_services: the settings, the served model's tag, and ``classifier``
    # (BentoML's handle on the Classifier service).
    settings: ServiceSettings
    model_tag: str

    def __init__(self) -> None:
        # A bad policy file stops the start-up here, with the file and field at fault.
        self.policy: Policy = load_policy(self.settings.policy)
        self.review_band = self.policy.band_for(
            model_info(self.model_tag).get("review_calibration")
        )
        # The queue may be locked or unwritable: predictions are served anyway (ReviewWriter).
        self.review_writer = ReviewWriter(self.settings.review_queue)
        self.metrics = service_metrics()
        self.metrics.served.labels(model=self.model_tag, policy_version=self.policy.version).set(1)
        if self.policy.review_rate is not None:  # what the review-rate alert compares with
            self.metrics.review_rate_target.set(self.policy.review_rate)
        self._warmed_up = False
        # Requests of this worker now waiting for the classifier (one event loop: no lock).
        self._waiting_for_model = 0
        logger.info(
            "serving model %s with policy %s (%s); review band %.3f (%s); review queue %s",
            self.model_tag,
            self.policy.version,
            self.settings.policy,
            self.review_band,
            "as set in the policy"
            if self.review_band == self.policy.review_band
            else f"to flag {self.policy.review_rate:.0%} of the model's validation posts",
            self.settings.review_queue,
        )

    async def __is_ready__(self) -> bool:
        """Ready once one prediction went through the whole path (model loaded, warm), and
        while the classifier answers its own /readyz (not while its worker restarts)."""
        try:
            if not self._warmed_up:
                await self.classifier.to_async.classify(list(WARM_UP_POSTS))
                self._warmed_up = True
            # In one process (tests, to_asgi) the classifier is a local object: always up.
            is_ready = getattr(self.classifier, "is_ready", None)
            return True if is_ready is None else await is_ready(READY_TIMEOUT_S)
        except Exception as err:  # the classifier worker may be starting or restarting
            logger.info("not ready: %s", type(err).__name__)
            return False

    async def predict(self, posts: list) -> PredictResponse:
        """Intents, sentiment and the action to take for each post, in input order."""
        received_at = datetime.now(UTC)
        stage = self.metrics.stage_seconds
        with stage.labels(stage="model").time():
            answers = await self._classify(posts)
        with stage.labels(stage="policy").time():
            predictions = [
                self._decide(post, answer, received_at)
                for post, answer in zip(posts, answers, strict=True)
            ]
        with stage.labels(stage="queue").time():
            await self._queue_for_review(posts, predictions, received_at)
        return PredictResponse(
            model=self.model_tag, policy_version=self.policy.version, predictions=predictions
        )

    async def _classify(self, posts: list) -> list[Answer]:
        # BentoML's client between services may reuse a keep-alive connection the classifier
        # has just closed (bentoml/BentoML#4971): the request never reached it, so one retry
        # is safe and turns a spurious 500 into a normal answer.
        import aiohttp

        # Large requests, and any request while no other is waiting for the model, skip
        # the batching queue: its window (about 10 ms) only pays when it gathers posts of
        # several concurrent requests (benchmarks/results/request_profile.md).
        alone = self._waiting_for_model == 0
        classify = (
            self.classifier.to_async.classify_request
            if len(posts) >= DIRECT_MIN_POSTS or alone
            else self.classifier.to_async.classify
        )
        self._waiting_for_model += 1
        try:
            try:
                return await classify(posts)
            except aiohttp.ClientConnectionError as err:
                logger.warning(
                    "classifier connection dropped (%s); retrying once", type(err).__name__
                )
                return await classify(posts)
        except (aiohttp.ClientError, TimeoutError, BentoMLException) as err:
            # The classifier worker is down (killed, restarting) or overloaded: nothing was
            # answered, so the client may send the same request again (503, Retry-After).
            # An error of ours inside the classifier (a bug) stays a 500.
            if isinstance(err, BentoMLException) and err.error_code < 500:
                raise
            logger.warning("classifier unavailable (%s): answering 503", type(err).__name__)
            raise ServiceUnavailable("the classifier cannot answer now; retry") from None
        finally:
            self._waiting_for_model -= 1

    def _decide(self, post, answer: Answer, received_at: datetime) -> PostPrediction:
        action = self.policy.decide(
            labels=answer.labels,
            sentiment=answer.sentiment.label,
            text=post.text,
            created_at=post.created_at,
            received_at=received_at,
        )
        reasons = self.policy.uncertain(answer.intents, answer.thresholds, self.review_band)
        prediction = PostPrediction.of(answer, action, reasons + answer.other_review_reasons())
        self._count(post, prediction)
        return prediction

    def _count(self, post, prediction: PostPrediction) -> None:
        """The model's view, for operators: what it said and what the policy decided."""
        metrics, lang = self.metrics, prediction.lang or "und"
        metrics.posts.labels(lang=lang).inc()
        if prediction.needs_review:
            metrics.posts_flagged.labels(lang=lang).inc()
        for intent in prediction.labels:
            metrics.predictions.labels(intent=intent, lang=lang).inc()
        metrics.sentiments.labels(sentiment=prediction.sentiment.label, lang=lang).inc()
        action = prediction.action
        metrics.actions.labels(type=action.type, priority=action.priority or "none").inc()
        source = "given" if post.lang else ("detected" if prediction.lang else "undetermined")
        metrics.languages.labels(source=source, lang=lang).inc()

    async def _queue_for_review(self, posts, predictions, received_at: datetime) -> None:
        items = [
            ReviewItem(
                post_id=prediction.id,
                text=post.text,  # the queue masks personal data before storing
                parent_text=post.parent_text,
                lang=prediction.lang,
                reasons=prediction.review_reasons,
                prediction=prediction.model_dump(
                    mode="json", include={"labels", "intents", "sentiment"}
                ),
                model=self.model_tag,
                created_at=post.created_at,
                queued_at=received_at,
            )
            for post, prediction in zip(posts, predictions, strict=True)
            if prediction.needs_review
        ]
        if items:
            await anyio.to_thread.run_sync(self.review_writer.add, items)


def build_services(settings: ServiceSettings) -> tuple[bentoml.Service, bentoml.Service]:
    """The ``Classifier`` and ``SocialCare`` services with these settings.

    The served model is referenced at class level (``BentoModel``), so that a Bento carries
    it; the request schema has the settings' limits, so pydantic refuses what they refuse.
    """
    model_tag = settings.served_model()
    classifier = bentoml.service(
        type("Classifier", (ClassifierWorker,), {"model": BentoModel(model_tag)}),
        name="socialcare-classifier",
        resources={"cpu": "2"},
        traffic={"timeout": 30},
        # The front's client to this service renews its connection pool every 100 requests
        # by default, closing connections that other requests are still using (500s under load).
        runner_connection={"max_requests": 1_000_000_000, "max_age": 3600.0},
    )
    request = request_model(settings.max_posts, settings.max_text_chars)
    front = {
        "settings": settings,
        "model_tag": model_tag,
        "classifier": bentoml.depends(classifier),
        "predict": bentoml.api(input_spec=request, output_spec=PredictResponse)(Front.predict),
    }
    social_care = bentoml.service(
        type("SocialCare", (Front,), front),
        name="socialcare",
        traffic={"timeout": 30, "max_concurrency": 256},
        endpoints={"livez": "/livez", "readyz": "/readyz"},
    )
    # Checks every request before BentoML parses it (serving.contract).
    social_care.add_asgi_middleware(
        RequestGuard, request_model=request, max_body_bytes=settings.max_body_bytes
    )
    return classifier, social_care


def __getattr__(name: str) -> bentoml.Service:
    """``SocialCare`` (and ``Classifier``) built from BentoML's arguments on first use: what
    `bentoml serve serving.service:SocialCare` and `bentoml build` load."""
    if name not in SERVICES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    services = build_services(bentoml.use_arguments(ServiceSettings))
    # Kept as module attributes: BentoML finds a service's import path by its name here.
    globals().update(zip(SERVICES, services, strict=True))
    return globals()[name]
