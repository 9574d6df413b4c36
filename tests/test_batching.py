"""The service's adaptive batching (serving.batching.ModelQueue), on a fake model that
records its calls: who goes alone, who shares a call, what a failure or a backlog does."""

import asyncio
import threading
import time

import pytest

from serving.batching import ModelQueue, QueueTimeout


class FakeModel:
    """Answers each post with its upper-case form, after ``seconds``; records every call.
    ``gate``, when set, holds each call until the test releases it."""

    def __init__(self, seconds: float = 0.0, fail_on: str | None = None):
        self.calls: list[list[str]] = []
        self.seconds, self.fail_on = seconds, fail_on
        self.gate: threading.Event | None = None

    def __call__(self, posts):
        self.calls.append(list(posts))
        if self.gate is not None:
            self.gate.wait(5)
        time.sleep(self.seconds)
        if self.fail_on in posts:
            raise RuntimeError("the model failed")
        return [post.upper() for post in posts]


def queue(model: FakeModel, max_posts: int = 4, max_wait_s: float = 10.0, sizes=None):
    on_batch = sizes.append if sizes is not None else (lambda size: None)
    return ModelQueue(model, max_posts=max_posts, max_wait_s=max_wait_s, on_batch=on_batch)


async def started(model: FakeModel, calls: int) -> None:
    """Until the model has begun ``calls`` calls."""
    while len(model.calls) < calls:
        await asyncio.sleep(0.001)


def test_a_post_alone_goes_to_the_model_at_once():
    model, sizes = FakeModel(), []
    models = queue(model, sizes=sizes)

    async def one_at_a_time():
        return [await models.classify([text]) for text in ("a", "b")]

    assert asyncio.run(one_at_a_time()) == [["A"], ["B"]]
    assert model.calls == [["a"], ["b"]]
    assert sizes == [1, 1]


def behind_a_busy_model(requests, max_posts=4, fail_on=None, leave=()):
    """Sends ["a"], then ``requests`` while the model is busy with it (the callers at
    indexes ``leave`` disconnect meanwhile), then lets the model go on. Returns the model
    and each request's answers (or exception), "a"'s first."""
    model = FakeModel(fail_on=fail_on)
    model.gate = threading.Event()
    models = queue(model, max_posts=max_posts)

    async def burst():
        first = asyncio.create_task(models.classify(["a"]))
        await started(model, 1)  # the model is busy with "a"
        tasks = [asyncio.create_task(models.classify(posts)) for posts in requests]
        await asyncio.sleep(0.01)
        for index in leave:
            tasks[index].cancel()  # the client disconnected
        model.gate.set()
        return await asyncio.gather(first, *tasks, return_exceptions=True)

    return model, asyncio.run(burst())


def test_requests_that_arrive_during_a_call_share_the_next_one():
    model, answers = behind_a_busy_model((["b", "c"], ["d"]))
    assert model.calls == [["a"], ["b", "c", "d"]]
    assert answers == [["A"], ["B", "C"], ["D"]]  # each caller gets its own posts


def test_a_batch_stops_at_max_posts_and_a_larger_request_goes_whole():
    requests = (["b", "c", "d"], ["e", "f"], ["g", "h", "i", "j", "k"])
    model, answers = behind_a_busy_model(requests, max_posts=4)
    assert model.calls == [["a"], ["b", "c", "d"], ["e", "f"], ["g", "h", "i", "j", "k"]]
    assert answers[3] == ["G", "H", "I", "J", "K"]


def test_a_failed_call_fails_its_requests_only():
    model, answers = behind_a_busy_model((["bad", "b"], ["c"]), max_posts=2, fail_on="bad")
    assert isinstance(answers[1], RuntimeError) and "the model failed" in str(answers[1])
    assert (answers[0], answers[2]) == (["A"], ["C"])
    assert model.calls == [["a"], ["bad", "b"], ["c"]]


def test_a_request_that_waited_too_long_is_refused_without_a_model_call():
    model = FakeModel(seconds=0.2)
    models = queue(model, max_wait_s=0.05)

    async def burst():
        first = asyncio.create_task(models.classify(["a"]))
        await started(model, 1)
        late = asyncio.create_task(models.classify(["b"]))
        with pytest.raises(QueueTimeout):
            await late
        return await first, await models.classify(["c"])  # and the queue goes on

    assert asyncio.run(burst()) == (["A"], ["C"])
    assert model.calls == [["a"], ["c"]]


def test_a_caller_that_left_costs_no_model_time():
    model, answers = behind_a_busy_model((["b"], ["c"]), leave=(0,))
    assert isinstance(answers[1], asyncio.CancelledError)
    assert (answers[0], answers[2]) == (["A"], ["C"])
    assert model.calls == [["a"], ["c"]]
