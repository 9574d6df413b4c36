"""Faults the service survives without losing anything: a locked or unwritable review
queue, writers and a reviewer on the queue at once, the service worker killed under
load, the policy file edited while it runs; and nothing personal in its logs meanwhile."""

import multiprocessing
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import httpx
import prometheus_client
import pytest

from serving.review_writer import RETRY_S, ReviewWriter
from socialcare.core.review_queue import QueueReader, ReviewItem, ReviewQueue


def item(n: int) -> ReviewItem:
    return ReviewItem(post_id=f"p-{n}", text=f"post {n}", reasons=["r"], prediction={}, model="m")


def errors(kind: str) -> float:
    value = prometheus_client.REGISTRY.get_sample_value(
        "socialcare_review_queue_errors_total", {"kind": kind}
    )
    return value or 0.0


def ids(queue: ReviewQueue) -> list[str]:
    return [entry.post_id for entry in queue.pending(after=0)]


@pytest.fixture
def new_writer():
    """ReviewWriter(...), closed after the test: a writer left retrying would write to the
    metrics registry the next test reads."""
    made: list[ReviewWriter] = []

    def make(*args, **kwargs) -> ReviewWriter:
        made.append(ReviewWriter(*args, **kwargs))
        return made[-1]

    yield make
    for writer in made:
        writer.close()


def written(writer: ReviewWriter) -> bool:
    """Whether the writer's kept posts reach the queue within a few retries."""
    deadline = time.monotonic() + 10 * RETRY_S
    while writer.waiting() and time.monotonic() < deadline:
        time.sleep(0.1)
    return writer.waiting() == 0


def test_a_locked_queue_costs_a_second_and_loses_nothing(new_writer, tmp_path):
    path = tmp_path / "queue.sqlite"
    writer = new_writer(path)
    writer.add([item(0)])
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another writer holds the lock (a stuck notebook)
    before = errors("locked")
    started = time.monotonic()
    writer.add([item(1), item(2)])
    assert time.monotonic() - started < 3  # the busy timeout, not the default 30 s
    assert errors("locked") == before + 1
    writer.add([item(3)])  # within RETRY_S: kept without trying
    assert writer.waiting() == 3
    blocker.execute("ROLLBACK")
    blocker.close()
    time.sleep(RETRY_S)
    writer.add([item(4)])
    assert written(writer)
    assert ids(ReviewQueue(path)) == [f"p-{n}" for n in range(5)]  # all, oldest first


def test_kept_posts_are_written_without_waiting_for_the_next_flagged_one(new_writer, tmp_path):
    """A quiet night: the queue comes back and no post is flagged; the retry timer still
    writes what was kept."""
    path = tmp_path / "queue.sqlite"
    writer = new_writer(path)
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    writer.add([item(1)])
    assert writer.waiting() == 1
    blocker.execute("ROLLBACK")
    blocker.close()
    assert written(writer)
    assert ids(ReviewQueue(path)) == ["p-1"]


def test_posts_being_written_still_count_as_waiting(new_writer, tmp_path, monkeypatch):
    path = tmp_path / "queue.sqlite"
    writer = new_writer(path)
    real_add, entered, release = ReviewQueue.add, threading.Event(), threading.Event()

    def slow(self, items):
        entered.set()
        release.wait(5)
        return real_add(self, items)

    monkeypatch.setattr(ReviewQueue, "add", slow)
    thread = threading.Thread(target=writer.add, args=([item(1)],))
    thread.start()
    assert entered.wait(5)
    assert writer.waiting() == 1  # not yet in the queue, though out of the backlog
    release.set()
    thread.join(5)
    assert writer.waiting() == 0 and ids(ReviewQueue(path)) == ["p-1"]


def test_closing_writes_what_was_kept_then_stops_retrying(new_writer, tmp_path, caplog):
    written_at_close, lost_at_close = tmp_path / "a.sqlite", tmp_path / "b.sqlite"
    for path in (written_at_close, lost_at_close):
        writer = new_writer(path)
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        writer.add([item(1)])
        assert writer.waiting() == 1
        if path == written_at_close:
            blocker.execute("ROLLBACK")
            writer.close()
        else:
            writer.close()
            blocker.execute("ROLLBACK")
        blocker.close()
    assert ids(ReviewQueue(written_at_close)) == ["p-1"]
    assert "b.sqlite not writable at shutdown: 1 flagged posts lost" in caplog.text
    assert "post 1" not in caplog.text
    time.sleep(RETRY_S * 1.5)  # a retry timer would have fired by now
    assert ids(ReviewQueue(lost_at_close)) == []


@pytest.mark.parametrize(
    "message, kind",
    [("attempt to write a readonly database", "read_only"), ("database or disk is full", "full")],
)
def test_an_unwritable_queue_keeps_posts_until_it_is_writable(
    new_writer, tmp_path, monkeypatch, message, kind
):
    path = tmp_path / "queue.sqlite"
    writer = new_writer(path)
    real_add = ReviewQueue.add

    def broken(self, items):
        raise sqlite3.OperationalError(message)

    monkeypatch.setattr(ReviewQueue, "add", broken)
    before = errors(kind)
    writer.add([item(1)])
    assert errors(kind) == before + 1 and writer.waiting() == 1
    monkeypatch.setattr(ReviewQueue, "add", real_add)
    time.sleep(RETRY_S)
    writer.add([item(2)])
    assert written(writer)
    assert ids(ReviewQueue(path)) == ["p-1", "p-2"]


def test_a_full_backlog_drops_the_oldest_and_counts_them(new_writer, tmp_path, monkeypatch):
    writer = new_writer(tmp_path / "queue.sqlite", max_backlog=3)
    monkeypatch.setattr(ReviewQueue, "add", lambda self, items: (_ for _ in ()).throw(OSError()))
    dropped = prometheus_client.REGISTRY.get_sample_value("socialcare_review_dropped_total") or 0
    writer.add([item(n) for n in range(5)])
    assert writer.waiting() == 3
    assert [entry.post_id for entry in writer._backlog] == ["p-2", "p-3", "p-4"]
    assert prometheus_client.REGISTRY.get_sample_value("socialcare_review_dropped_total") == (
        dropped + 2
    )


def test_predictions_are_served_while_the_queue_is_locked(service_client, service_settings):
    queue_path = service_settings.review_queue
    ReviewQueue(queue_path)  # exists
    before = len(ReviewQueue(queue_path).pending())
    blocker = sqlite3.connect(queue_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    flagged = {"text": "Where is my refund? Nobody answers.", "lang": "en"}  # other language
    try:
        response = service_client.post("/predict", json={"posts": [flagged]})
        assert response.status_code == 200 and response.json()["predictions"][0]["needs_review"]
        # In one process BentoML serves no /metrics: the registry is what it would show.
        assert errors("locked") >= 1
        assert prometheus_client.REGISTRY.get_sample_value("socialcare_review_backlog") == 1
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    time.sleep(RETRY_S)
    service_client.post("/predict", json={"posts": [flagged]})
    assert len(ReviewQueue(queue_path).pending()) == before + 2  # the kept post, then this one


def _write(path: str, worker: int, count: int) -> None:
    queue = ReviewQueue(Path(path))
    for start in range(0, count, 5):
        queue.add([item(worker * 10_000 + n) for n in range(start, start + 5)])
        time.sleep(0.002)


def test_two_writers_and_a_reviewer_read_every_item_once(tmp_path):
    """Two service workers (processes) add items while a reviewer's session pages through
    the queue: each item is read exactly once, none is missed."""
    path = tmp_path / "queue.sqlite"
    ReviewQueue(path)
    context = multiprocessing.get_context("spawn")
    writers = [context.Process(target=_write, args=(str(path), w, 300)) for w in (1, 2)]
    for process in writers:
        process.start()
    session = QueueReader(ReviewQueue(path))
    read: list[str] = []
    while any(process.is_alive() for process in writers):
        read.extend(entry.post_id for entry in session.next(limit=7))
    for process in writers:
        process.join(timeout=60)
        assert process.exitcode == 0
    read.extend(entry.post_id for entry in session.next())  # what came after the last page
    assert len(read) == len(set(read)) == 600
    assert sorted(read) == sorted(ids(ReviewQueue(path)))


def test_the_queue_file_is_private(tmp_path):
    path = tmp_path / "queue.sqlite"
    ReviewQueue(path).add([item(1)])
    assert (path.stat().st_mode & 0o777) == 0o600


SECRET = "Anna Svensson anna.svensson@example.se 070-123 45 67"


def test_worker_killed_under_load_nothing_lost(registered_baseline, start_service, tmp_path):
    """SIGKILL to the service worker while four callers send posts: BentoML starts a new
    worker, callers (the typed client, retrying dropped connections) see no error, no
    answer is a 500; the policy file edited meanwhile is not read; the logs hold no post
    text."""
    from serving.client import SocialCareClient
    from serving.policy import load_policy
    from socialcare.core import paths

    policy = tmp_path / "policy.yaml"
    policy.write_text(paths.POLICY_FILE.read_text(encoding="utf-8"), encoding="utf-8")
    version = load_policy(policy).version
    service = start_service(registered_baseline[0], "--policy", str(policy))
    answered, failures, stop = [], [], threading.Event()

    def call(n: int) -> None:
        with SocialCareClient(service.url, timeout=30, backoff=0.25) as api:
            while not stop.is_set():
                try:
                    batch = [{"text": f"{SECRET} har inte fått svar {n}", "id": f"{n}"}]
                    response = api.predict_batch(batch)
                    answered.append(response.policy_version)
                except Exception as err:  # what a caller would see
                    failures.append(repr(err))

    callers = [threading.Thread(target=call, args=(n,)) for n in range(4)]
    for caller in callers:
        caller.start()
    time.sleep(2)
    # The policy file half-written, then replaced: the running service reads neither.
    policy.write_text("version: broken\nrules: [", encoding="utf-8")
    victim = service.worker_pid()
    os.kill(victim, signal.SIGKILL)
    before = len(answered)
    # Connections wait in the listening socket's backlog until the new worker answers.
    assert httpx.get(f"{service.url}/readyz", timeout=120).status_code == 200
    assert service.worker_pid() != victim
    during = len(answered)
    time.sleep(2)
    stop.set()
    for caller in callers:
        caller.join(timeout=120)

    assert failures == []
    assert len(answered) > during >= before  # answers after the new worker started
    assert set(answered) == {version}  # the policy it started with
    log = service.log()
    assert "status=500" not in log
    for private in ("Svensson", "anna.svensson", "123 45 67"):
        assert private not in log
