"""The prediction service: `POST /predict` says what each post is and what to do about it.

Two BentoML services in one Bento:
- ``Classifier`` holds the model and answers batches. Its ``classify`` API is batchable,
  so posts from many concurrent requests reach the model together (adaptive batching).
- ``SocialCare`` is the front door: validation, language detection, the response policy,
  the review queue. It calls ``Classifier`` and never touches the model itself, so the
  model process does nothing but inference.

The model is a BentoML argument (`--arg model=TAG` to `bentoml serve` or `bentoml build`;
a built Bento keeps it), by default the production model, else the newest. Run-time
settings come from the environment, set by `socialcare serve` or the container:
SOCIALCARE_POLICY, SOCIALCARE_REVIEW_QUEUE, SOCIALCARE_MAX_POSTS, SOCIALCARE_MAX_TEXT_CHARS.
Post text is never logged.
"""

import logging
import os
import threading
from datetime import UTC, datetime
from pathlib import Path

import anyio
import bentoml
from bentoml.models import BentoModel
from pydantic import BaseModel

from serving.api import PostPrediction, PredictRequest, PredictResponse
from serving.policy import Policy, load_policy
from socialcare.core import paths
from socialcare.core.labels import INTENTS, LANGS, SENTIMENTS
from socialcare.core.language import detect_languages, load_detector
from socialcare.core.review_queue import ReviewItem, ReviewQueue
from socialcare.runtime import registry

logger = logging.getLogger("socialcare.service")


class ServiceArguments(BaseModel):
    model: str | None = None  # registered tag; None: the production model, else the newest


MODEL_TAG, _ = registry.model_path(bentoml.use_arguments(ServiceArguments).model)
POLICY_FILE = Path(os.environ.get("SOCIALCARE_POLICY", paths.POLICY_FILE))
REVIEW_QUEUE = Path(os.environ.get("SOCIALCARE_REVIEW_QUEUE", paths.REVIEW_QUEUE))
# Adaptive batching: at most this many posts per model call (64 keeps one call near
# 100 ms on 2 cores). BentoML sizes the batching window itself from observed latencies;
# MAX_QUEUE_MS only caps how long a post may queue before the classifier answers 503
# ("overloaded", which the client retries), so bursts queue instead of failing.
MAX_BATCH_POSTS = 64
MAX_QUEUE_MS = 10_000
# Requests with at least this many posts go to the model as they are, not through the
# batching queue (on CPU, batches beyond ~8 posts gain little).
DIRECT_MIN_POSTS = 8
WARM_UP_TEXTS = ("Hej, när får jag svar på min skadeanmälan?", "Grazie mille, servizio ottimo!")


class ClassifierInput(BaseModel):
    text: str
    lang: str | None = None


class ClassifierOutput(BaseModel):
    intents: list[float]  # INTENTS order
    labels: list[bool]
    thresholds: list[float]
    sentiment: list[float]  # SENTIMENTS order
    truncated: bool


@bentoml.service(
    name="socialcare-classifier",
    resources={"cpu": "2"},
    traffic={"timeout": 30},
    # The front's client to this service renews its connection pool every 100 requests by
    # default, closing connections that other requests are still using (500s under load).
    runner_connection={"max_requests": 1_000_000_000, "max_age": 3600.0},
)
class Classifier:
    """The model, loaded once per worker, answering batches of posts."""

    model = BentoModel(MODEL_TAG)

    def __init__(self) -> None:
        from socialcare.runtime.predictor import Predictor

        self.predictor = Predictor(Path(self.model.path))
        self.predictor.predict(list(WARM_UP_TEXTS), ["sv", "it"])  # first call pays set-up
        # One model call at a time: each already uses every core, and two at once would
        # only fight over them.
        self._model_lock = threading.Lock()
        logger.info("model %s loaded and warmed up", MODEL_TAG)

    @bentoml.api(batchable=True, max_batch_size=MAX_BATCH_POSTS, max_latency_ms=MAX_QUEUE_MS)
    def classify(self, posts: list[ClassifierInput]) -> list[ClassifierOutput]:
        """Posts of small requests, gathered from concurrent callers (adaptive batching)."""
        return self._classify(posts)

    @bentoml.api
    def classify_request(self, posts: list[ClassifierInput]) -> list[ClassifierOutput]:
        """The posts of one large request: already a batch, so they skip the batching queue,
        whose learned wait (it grows under bursts) would only delay them."""
        return self._classify(posts)

    def _classify(self, posts: list[ClassifierInput]) -> list[ClassifierOutput]:
        texts = [post.text for post in posts]
        with self._model_lock:
            predictions = self.predictor.predict(texts, [post.lang for post in posts])
        return [
            ClassifierOutput(
                intents=predictions.intent_prob[i].tolist(),
                labels=predictions.intent_pred[i].tolist(),
                thresholds=predictions.thresholds[i].tolist(),
                sentiment=predictions.sentiment_prob[i].tolist(),
                truncated=bool(predictions.truncated[i]),
            )
            for i in range(len(posts))
        ]


@bentoml.service(
    name="socialcare",
    traffic={"timeout": 30, "max_concurrency": 256},
    endpoints={"livez": "/livez", "readyz": "/readyz"},
)
class SocialCare:
    """Classifies posts and applies the insurer's response policy."""

    classifier = bentoml.depends(Classifier)

    def __init__(self) -> None:
        # A bad policy file stops the start-up here, with the file and field at fault.
        self.policy: Policy = load_policy(POLICY_FILE)
        self.review_queue = ReviewQueue(REVIEW_QUEUE)
        load_detector()
        self._warmed_up = False
        logger.info(
            "serving model %s with policy %s (%s); review queue %s",
            MODEL_TAG,
            self.policy.version,
            POLICY_FILE,
            REVIEW_QUEUE,
        )

    async def __is_ready__(self) -> bool:
        """Ready once one prediction went through the whole path (model loaded, warm)."""
        if not self._warmed_up:
            try:
                posts = [ClassifierInput(text=text) for text in WARM_UP_TEXTS]
                await self.classifier.to_async.classify(posts)
            except Exception as err:  # the classifier worker may still be starting
                logger.info("not ready yet: %s", type(err).__name__)
                return False
            self._warmed_up = True
        return True

    @bentoml.api(input_spec=PredictRequest, output_spec=PredictResponse)
    async def predict(self, posts: list) -> PredictResponse:
        """Intents, sentiment and the action to take for each post, in input order."""
        received_at = datetime.now(UTC)
        given = [post.lang for post in posts]
        missing = [i for i, lang in enumerate(given) if lang is None]
        detected = []
        if missing:  # lingua takes ~0.5 ms a post: off the event loop, which serves the others
            texts = [posts[i].text for i in missing]
            detected = await anyio.to_thread.run_sync(detect_languages, texts)
        langs = list(given)
        for i, lang in zip(missing, detected, strict=True):
            langs[i] = lang
        # Thresholds exist for the labelled languages only; others get the "any" ones.
        model_langs = [lang if lang in LANGS else None for lang in langs]
        outputs = await self._classify(
            [
                ClassifierInput(text=p.text, lang=lang)
                for p, lang in zip(posts, model_langs, strict=True)
            ]
        )
        predictions = [
            self._decide(post, lang, output, received_at)
            for post, lang, output in zip(posts, langs, outputs, strict=True)
        ]
        await self._queue_for_review(posts, predictions, received_at)
        return PredictResponse(
            model=MODEL_TAG, policy_version=self.policy.version, predictions=predictions
        )

    async def _classify(self, inputs: list[ClassifierInput]) -> list[ClassifierOutput]:
        # BentoML's client between services may reuse a keep-alive connection the classifier
        # has just closed (bentoml/BentoML#4971): the request never reached it, so one retry
        # is safe and turns a spurious 500 into a normal answer.
        import aiohttp

        classify = (
            self.classifier.to_async.classify_request
            if len(inputs) >= DIRECT_MIN_POSTS
            else self.classifier.to_async.classify
        )
        try:
            return await classify(inputs)
        except aiohttp.ClientConnectionError as err:
            logger.warning("classifier connection dropped (%s); retrying once", type(err).__name__)
            return await classify(inputs)

    def _decide(self, post, lang: str | None, output, received_at: datetime) -> PostPrediction:
        labels = [name for name, on in zip(INTENTS, output.labels, strict=True) if on]
        scores = dict(zip(SENTIMENTS, output.sentiment, strict=True))
        sentiment = max(scores, key=scores.get)
        action = self.policy.decide(
            labels=labels,
            sentiment=sentiment,
            text=post.text,
            created_at=post.created_at,
            received_at=received_at,
        )
        intents = dict(zip(INTENTS, output.intents, strict=True))
        thresholds = dict(zip(INTENTS, output.thresholds, strict=True))
        reasons = self.policy.uncertain(intents, thresholds) + other_review_reasons(
            lang, output.truncated
        )
        return PostPrediction(
            id=post.id,
            lang=lang,
            labels=labels,
            intents=intents,
            sentiment={"label": sentiment, "scores": scores},
            action=action,
            needs_review=bool(reasons),
            review_reasons=reasons,
        )

    async def _queue_for_review(self, posts, predictions, received_at: datetime) -> None:
        items = [
            ReviewItem(
                post_id=prediction.id,
                text=post.text,  # the queue masks personal data before storing
                lang=prediction.lang,
                reasons=prediction.review_reasons,
                prediction=prediction.model_dump(
                    mode="json", include={"labels", "intents", "sentiment"}
                ),
                model=MODEL_TAG,
                created_at=post.created_at,
                queued_at=received_at,
            )
            for post, prediction in zip(posts, predictions, strict=True)
            if prediction.needs_review
        ]
        if items:
            await anyio.to_thread.run_sync(self.review_queue.add, items)


def other_review_reasons(lang: str | None, truncated: bool) -> list[str]:
    """Review reasons besides uncertainty (which the policy's review band decides)."""
    reasons = []
    if lang is not None and lang not in LANGS:
        reasons.append(f"language: {lang} (the model knows {', '.join(LANGS)})")
    if truncated:
        reasons.append("truncated: the text is longer than the model reads")
    return reasons
