"""Flagged posts into the review queue, without ever failing or slowing a prediction.

The queue is a SQLite file that a reviewer's notebook also writes (marking items done),
and that may be locked, read-only or on a full disk. A prediction must be served anyway,
and the posts it flagged must not be lost silently. So ``ReviewWriter``:

- writes with a short busy timeout (a locked file costs a request at most that long);
- on failure keeps the posts in memory (a bounded backlog), logs the outage once (never
  the text), counts each failed write on /metrics, and tries again with the whole
  backlog, oldest first, every ``RETRY_S`` (a timer, so also when no post is flagged);
- past ``max_backlog`` posts drops the oldest and counts them (socialcare_review_dropped);
- at shutdown (``close``) tries once more, and logs how many posts it could not write.

A write in progress is never waited for: a post flagged meanwhile joins the backlog.
"""

import logging
import sqlite3
import threading
import time
from collections import deque
from pathlib import Path

from serving.metrics import service_metrics
from socialcare.core.review_queue import ReviewItem, ReviewQueue

logger = logging.getLogger("socialcare.service")

# A writer waits this long for another's lock (the notebook's writes take milliseconds).
BUSY_TIMEOUT_S = 1.0
# After a failed write, the next attempt waits at least this long.
RETRY_S = 1.0
# Posts kept in memory while the queue cannot be written (~2 KB each: ~20 MB at most).
MAX_BACKLOG = 10_000


def failure_kind(err: Exception) -> str:
    """locked, read_only, full, io or other: what an operator has to fix."""
    message = str(err).lower()
    if "locked" in message or "busy" in message:
        return "locked"
    if "readonly" in message or "read-only" in message or "permission" in message:
        return "read_only"
    if "full" in message or "no space" in message:
        return "full"
    if "i/o" in message:
        return "io"
    return "other"


class ReviewWriter:
    def __init__(self, path: Path, max_backlog: int = MAX_BACKLOG):
        self.path = Path(path)
        self.max_backlog = max_backlog
        self._queue: ReviewQueue | None = None
        self._backlog: deque[ReviewItem] = deque()
        self._lock = threading.Lock()  # guards the fields below, never held while writing
        self._writing = False
        self._in_flight = 0  # posts taken from the backlog by the write in progress
        self._retry_at = 0.0
        self._retry: threading.Timer | None = None
        self._closed = False
        self._failing_since: float | None = None  # when the current outage began
        self.metrics = service_metrics()
        self.metrics.review_backlog.set(0)
        try:  # opened now if it can be, so that a problem shows in the start-up log
            self._queue = ReviewQueue(self.path, busy_timeout_s=BUSY_TIMEOUT_S)
        except (sqlite3.Error, OSError) as err:
            kind = failure_kind(err)
            self.metrics.review_queue_errors.labels(kind=kind).inc()
            logger.warning("review queue %s not usable yet (%s: %s)", self.path, kind, err)

    def add(self, items: list[ReviewItem]) -> None:
        """Queue these posts (and any backlog); never raises for the queue's failures."""
        with self._lock:
            self._backlog.extend(items)
            self._drop_overflow()
            self.metrics.review_backlog.set(len(self._backlog))
            if not self._backlog or self._writing or time.monotonic() < self._retry_at:
                return
            self._writing = True
        # Until the backlog is empty: posts flagged while a write is in progress join the
        # backlog, and this thread writes them too.
        while True:
            with self._lock:
                batch = list(self._backlog)
                self._backlog.clear()
                self._in_flight = len(batch)
                if not batch:
                    self._writing = False
                    self.metrics.review_backlog.set(0)
                    return
            try:
                self._store(batch)
            except (sqlite3.Error, OSError) as err:
                self._failed(batch, err)
                return
            self._written(batch)

    def _failed(self, batch: list[ReviewItem], err: Exception) -> None:
        kind = failure_kind(err)
        self.metrics.review_queue_errors.labels(kind=kind).inc()
        if self._queue is not None:
            # Reopened at the next attempt: a connection opened while the file system was
            # read-only stays read-only after it is writable again.
            self._queue.close()
        with self._lock:
            self._backlog.extendleft(reversed(batch))  # oldest first again
            self._in_flight = 0
            self._drop_overflow()
            self._retry_at = time.monotonic() + RETRY_S
            self._writing = False
            self.metrics.review_backlog.set(len(self._backlog))
            outage_starts = self._failing_since is None
            if outage_starts:
                self._failing_since = time.monotonic()
        if outage_starts:  # once per outage, not once per retry
            # sqlite's messages ("database is locked") never contain a post's text.
            logger.warning(
                "review queue %s not writable (%s: %s): flagged posts kept in memory and "
                "retried every %g s", self.path, kind, err, RETRY_S,
            )  # fmt: skip
        # Retried even if no post is flagged meanwhile (a quiet night); a little after
        # RETRY_S, so that the retry is never refused as too early.
        with self._lock:
            if self._closed:
                return
            self._retry = threading.Timer(RETRY_S * 1.05, self.add, args=([],))
            self._retry.daemon = True
            self._retry.start()

    def _written(self, batch: list[ReviewItem]) -> None:
        with self._lock:
            self._in_flight = 0
            outage = self._failing_since
            self._failing_since = None
        if outage is not None:
            logger.info(
                "review queue %s writable again after %.0f s: %d kept posts queued",
                self.path, time.monotonic() - outage, len(batch),
            )  # fmt: skip

    def _store(self, batch: list[ReviewItem]) -> None:
        if self._queue is None:  # it could not be opened at start
            self._queue = ReviewQueue(self.path, busy_timeout_s=BUSY_TIMEOUT_S)
        self._queue.add(batch)

    def _drop_overflow(self) -> None:
        overflow = len(self._backlog) - self.max_backlog
        if overflow > 0:
            for _ in range(overflow):
                self._backlog.popleft()
            self.metrics.review_dropped.inc(overflow)
            logger.error("review backlog full: %d flagged posts dropped (oldest first)", overflow)

    def waiting(self) -> int:
        """Posts kept in memory, not yet in the queue (those being written included)."""
        with self._lock:
            return len(self._backlog) + self._in_flight

    def close(self) -> None:
        """At shutdown: one last attempt to write what is kept, then no more retries; the
        posts that could not be written are counted in the log (never their text)."""
        with self._lock:
            self._closed = True
            if self._retry is not None:
                self._retry.cancel()
            self._retry_at = 0.0
        self.add([])
        lost = self.waiting()
        if lost:
            logger.error(
                "review queue %s not writable at shutdown: %d flagged posts lost", self.path, lost
            )
