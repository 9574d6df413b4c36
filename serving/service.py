"""The prediction service: `POST /predict` says what each post is and what to do about it.

One BentoML service, ``SocialCare``: the request's validation, the model, the insurer's
response policy and the review queue, in one process. The model answers through the one
path from posts to answers (socialcare.runtime.classify: language detection, the
language's thresholds, the Answer record) on a thread of its own, one call at a time;
the posts of requests that arrive while it runs go together into the next call
(serving.batching: adaptive batching without a waiting window). The model used to run in
a second BentoML service: on 2 cores that hop cost a third of the throughput and a third
of a lone post's latency (benchmarks/README.md, "the two-service split").

Settings (serving.settings.ServiceSettings: model, policy, review queue, request limits)
are BentoML arguments, read once when BentoML first asks for the service:
`bentoml serve serving.service:SocialCare --arg model=TAG ...` (what `socialcare serve`
runs), or `bentoml build --arg ...`, which a built Bento keeps. ``build_service(settings)``
makes the service from settings given directly (the tests). Post text is never logged.
"""

import logging
from datetime import UTC, datetime
from pathlib import Path

import anyio
import bentoml
from bentoml.exceptions import ServiceUnavailable
from bentoml.models import BentoModel

from serving.api import PostPrediction, PredictResponse, request_model
from serving.batching import ModelQueue, QueueTimeout
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
# 100 ms on 2 cores; a larger request still goes in one call of its own). A request that
# waited MAX_QUEUE_S for the model gets 503 ("overloaded", which the client retries), so
# bursts queue instead of failing, and a backlog does not grow without end.
MAX_BATCH_POSTS = 64
MAX_QUEUE_S = 10.0
WARM_UP_POSTS = (
    IncomingPost(text="Hej, när får jag svar på min skadeanmälan?"),
    IncomingPost(text="Grazie mille, servizio ottimo!"),
)


class SocialCareService:
    """Classifies posts and applies the insurer's response policy."""

    # Set by build_service: the settings and the served model (referenced at class level,
    # so that a Bento carries it).
    settings: ServiceSettings
    model: BentoModel

    def __init__(self) -> None:
        from socialcare.runtime.predictor import Predictor

        # A bad policy file stops the start-up here, with the file and field at fault.
        self.policy: Policy = load_policy(self.settings.policy)
        self.model_tag = str(self.model.tag)
        self.review_band = self.policy.band_for(
            model_info(self.model_tag).get("review_calibration")
        )
        # The queue may be locked or unwritable: predictions are served anyway (ReviewWriter).
        self.review_writer = ReviewWriter(self.settings.review_queue)
        self.metrics = service_metrics()
        predictor = Predictor(Path(self.model.path), tag=self.model_tag)
        classify_posts(predictor, WARM_UP_POSTS)  # the first call pays the set-up
        self.model_queue = ModelQueue(
            lambda posts: classify_posts(predictor, posts),
            max_posts=MAX_BATCH_POSTS,
            max_wait_s=MAX_QUEUE_S,
            on_batch=self.metrics.model_batch_posts.observe,
        )
        self.metrics.served.labels(model=self.model_tag, policy_version=self.policy.version).set(1)
        if self.policy.review_rate is not None:  # what the review-rate alert compares with
            self.metrics.review_rate_target.set(self.policy.review_rate)
        logger.info(
            "serving model %s (warmed up) with policy %s (%s); review band %.3f (%s); "
            "review queue %s",
            self.model_tag,
            self.policy.version,
            self.settings.policy,
            self.review_band,
            "as set in the policy"
            if self.review_band == self.policy.review_band
            else f"to flag {self.policy.review_rate:.0%} of the model's validation posts",
            self.settings.review_queue,
        )

    @bentoml.on_shutdown
    def shutdown(self) -> None:
        """A worker stopping (or restarting) writes what the review queue could not take
        yet, and its retries and model thread stop with it."""
        self.review_writer.close()
        self.model_queue.close()

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
        try:
            return await self.model_queue.classify(posts)
        except QueueTimeout:
            # Nothing was answered, so the client may send the same request again (503,
            # Retry-After). An error of ours inside the model call (a bug) stays a 500.
            logger.warning("a request waited over %.0f s for the model: answering 503", MAX_QUEUE_S)
            raise ServiceUnavailable("the model is behind its queue; retry") from None

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


def build_service(settings: ServiceSettings) -> bentoml.Service:
    """The ``SocialCare`` service with these settings; the request schema has the settings'
    limits, so pydantic refuses what they refuse."""
    request = request_model(settings.max_posts, settings.max_text_chars)
    members = {
        "settings": settings,
        "model": BentoModel(settings.served_model()),
        "predict": bentoml.api(input_spec=request, output_spec=PredictResponse)(
            SocialCareService.predict
        ),
    }
    service = bentoml.service(
        type("SocialCare", (SocialCareService,), members),
        name="socialcare",
        resources={"cpu": "2"},
        traffic={"timeout": 30, "max_concurrency": 256},
        endpoints={"livez": "/livez", "readyz": "/readyz"},
    )
    # Checks every request before BentoML parses it (serving.contract).
    service.add_asgi_middleware(
        RequestGuard, request_model=request, max_body_bytes=settings.max_body_bytes
    )
    return service


def __getattr__(name: str) -> bentoml.Service:
    """``SocialCare`` built from BentoML's arguments on first use: what
    `bentoml serve serving.service:SocialCare` and `bentoml build` load."""
    if name != "SocialCare":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    service = build_service(bentoml.use_arguments(ServiceSettings))
    # Kept as a module attribute: BentoML finds a service's import path by its name here.
    globals()[name] = service
    return service
