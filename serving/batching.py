"""Adaptive batching in the service's own process: one model call at a time, and the posts
of every request that arrives meanwhile go together into the next call.

A post that finds the model idle goes to it at once (no batching window to wait out);
under load, batches grow by themselves to what arrived during the previous call, up to
``max_posts``. This replaced a classifier service of its own behind BentoML's adaptive
batching: on 2 cores the hop between the two processes cost more than it gave
(benchmarks/README.md, "the two-service split").
"""

import asyncio
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


class QueueTimeout(Exception):
    """A request waited longer than the queue allows before its model call began."""


@dataclass
class _Request:
    posts: Sequence
    answer: asyncio.Future
    queued_at: float = field(default_factory=time.monotonic)


class ModelQueue:
    """Runs ``classify`` (posts -> one answer per post, in order) on a thread of its own,
    one call at a time, batching the posts of concurrent requests.

    ``on_batch`` hears the size of every call (a metric). A request still waiting
    ``max_wait_s`` after it arrived fails with QueueTimeout instead of running late: the
    caller is told to retry rather than kept waiting behind a backlog.
    """

    def __init__(
        self,
        classify: Callable[[Sequence], list],
        max_posts: int,
        max_wait_s: float,
        on_batch: Callable[[int], None] = lambda size: None,
    ):
        self._classify = classify
        self._max_posts = max_posts
        self._max_wait_s = max_wait_s
        self._on_batch = on_batch
        self._waiting: deque[_Request] = deque()
        # One thread: each model call already uses every core.
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="model")
        self._draining: asyncio.Task | None = None

    async def classify(self, posts: Sequence) -> list:
        request = _Request(posts, asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        if self._draining is None:
            self._draining = asyncio.create_task(self._drain())
        return await request.answer

    def close(self) -> None:
        self._thread.shutdown(wait=False, cancel_futures=True)

    async def _drain(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self._waiting:
                batch = self._next_batch()
                if not batch:
                    continue
                posts = [post for request in batch for post in request.posts]
                self._on_batch(len(posts))
                try:
                    answers = await loop.run_in_executor(self._thread, self._classify, posts)
                except Exception as err:  # every request of the batch hears it
                    for request in batch:
                        _settle(request.answer, error=err)
                    continue
                start = 0
                for request in batch:
                    _settle(request.answer, answers[start : start + len(request.posts)])
                    start += len(request.posts)
        finally:
            self._draining = None

    def _next_batch(self) -> list[_Request]:
        """The oldest requests whose posts fit in one call (the first always goes, however
        many posts it has); those that waited too long, or whose caller left, drop out."""
        batch: list[_Request] = []
        size = 0
        now = time.monotonic()
        while self._waiting:
            request = self._waiting[0]
            if request.answer.done():  # the caller gave up (disconnected)
                self._waiting.popleft()
                continue
            if now - request.queued_at > self._max_wait_s:
                self._waiting.popleft()
                _settle(request.answer, error=QueueTimeout(f"waited over {self._max_wait_s} s"))
                continue
            if batch and size + len(request.posts) > self._max_posts:
                break
            batch.append(self._waiting.popleft())
            size += len(request.posts)
        return batch


def _settle(answer: asyncio.Future, result: object = None, error: Exception | None = None) -> None:
    if answer.done():  # cancelled meanwhile: nobody is waiting for it
        return
    if error is not None:
        answer.set_exception(error)
    else:
        answer.set_result(result)
