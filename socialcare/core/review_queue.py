"""Posts the service is unsure about, waiting for a reviewer: a small SQLite queue.

Several service workers add to it while a reviewer's notebook reads it, so it uses
SQLite's write-ahead log (readers never block the writer) and a busy timeout (writers
wait for each other instead of failing). A ``ReviewQueue`` keeps one connection per
process, behind a lock, so threads can share it and a forked worker opens its own.

Texts, and the parent posts of replies, are masked with ``mask_pii`` inside ``add``:
nothing unmasked is ever stored, the queue itself guarantees it. Reviewed items are
marked, never deleted, so the queue is also a record of what was reviewed and when.
A queue file from an older release gets the columns added since when it is opened.
"""

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from socialcare.core import paths
from socialcare.core.clock import as_utc, utc_now
from socialcare.core.privacy import mask_pii

# Writers wait this long for each other's transactions before giving up; far longer
# than any write here takes (milliseconds), so only a stuck process makes it fail.
BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS review_items (
    queue_id    INTEGER PRIMARY KEY AUTOINCREMENT,
    post_id     TEXT,
    text        TEXT NOT NULL,
    parent_text TEXT,           -- the post it replies to, masked like text; NULL if none
    lang        TEXT,
    reasons     TEXT NOT NULL,  -- JSON list of strings
    prediction  TEXT NOT NULL,  -- JSON object, as the API returns it
    model       TEXT NOT NULL,
    created_at  TEXT,           -- ISO 8601, UTC
    queued_at   TEXT NOT NULL,  -- ISO 8601, UTC
    reviewed_at TEXT            -- NULL while pending
);
CREATE INDEX IF NOT EXISTS review_items_pending ON review_items (reviewed_at, queued_at);
"""
# Columns added after the first release, with their types: a queue file written before
# them gets them on open (existing rows read NULL).
_ADDED_COLUMNS = {"parent_text": "TEXT"}
# Connections a forked child inherited from its parent, kept from being closed.
_INHERITED: list[sqlite3.Connection] = []
_COLUMNS = (
    "queue_id, post_id, text, parent_text, lang, reasons, prediction, model, created_at, queued_at"
)


def _utc_text(moment: datetime | None) -> str | None:
    # One fixed format in UTC, so that text order is time order in SQL.
    if moment is None:
        return None
    return as_utc(moment).isoformat(timespec="microseconds")


class ReviewItem(BaseModel):
    """One post waiting for a reviewer, with why it needs review and what the model said."""

    model_config = ConfigDict(extra="forbid")

    post_id: str | None = None
    text: str
    # The post this one replies to: reviewers label a reply as it reads under its parent.
    parent_text: str | None = None
    lang: str | None = None
    # Why it needs review: "uncertain: complaint 0.48 near 0.45", "language: en", "truncated".
    reasons: list[str]
    # The model's answer as the API returns it: labels, intent and sentiment probabilities.
    prediction: dict[str, Any]
    model: str
    created_at: datetime | None = None
    queued_at: datetime = Field(default_factory=utc_now)
    # Assigned by the store; None until the item is added.
    queue_id: int | None = None


def _add_missing_columns(conn: sqlite3.Connection) -> None:
    """Migrate a queue file from an older release: add the columns it lacks."""
    present = {row[1] for row in conn.execute("PRAGMA table_info(review_items)")}
    for name, kind in _ADDED_COLUMNS.items():
        if name not in present:
            conn.execute(f"ALTER TABLE review_items ADD COLUMN {name} {kind}")


class ReviewQueue:
    """The review queue in one SQLite file (created, with its folder, on first use)."""

    def __init__(self, path: Path = paths.REVIEW_QUEUE, busy_timeout_s: float = BUSY_TIMEOUT_S):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # Posts (masked or not) are personal: only the owner may read the file. SQLite
            # gives its -wal and -shm files the same permissions.
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = os.getpid()
        with self._connect() as conn:
            conn.executescript(_SCHEMA)
            _add_missing_columns(conn)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """The connection, for one transaction: committed on success, rolled back on error."""
        with self._lock:
            if self._conn is not None and self._pid != os.getpid():
                # Inherited through a fork: the parent still uses it, so the child must
                # neither use nor close it (closing could checkpoint the parent's log).
                _INHERITED.append(self._conn)
                self._conn = None
            if self._conn is None:
                self._conn = self._open()
                self._pid = os.getpid()
            with self._conn:
                yield self._conn

    def _open(self) -> sqlite3.Connection:
        # Kept open rather than opened per call: closing the last connection to a WAL
        # file checkpoints it, about 20 ms per add instead of 0.1 ms.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, check_same_thread=False)
        # WAL is a property of the file: set once, every later connection uses it.
        conn.execute("PRAGMA journal_mode=WAL")
        # With WAL, NORMAL never corrupts the file; a power cut may lose the last items
        # queued (acceptable here) and a commit needs no fsync.
        conn.execute("PRAGMA synchronous=NORMAL")
        return conn

    def close(self) -> None:
        """Close this process's connection (a later call opens a new one)."""
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None

    def add(self, items: list[ReviewItem]) -> int:
        """Store items (texts masked) in one transaction; return how many were added."""
        rows = [
            (
                item.post_id,
                mask_pii(item.text),
                None if item.parent_text is None else mask_pii(item.parent_text),
                item.lang,
                json.dumps(item.reasons, ensure_ascii=False),
                json.dumps(item.prediction, ensure_ascii=False),
                item.model,
                _utc_text(item.created_at),
                _utc_text(item.queued_at),
            )
            for item in items
        ]
        with self._connect() as conn:
            conn.executemany(
                "INSERT INTO review_items (post_id, text, parent_text, lang, reasons, prediction,"
                " model, created_at, queued_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                rows,
            )
        return len(rows)

    def pending(self, limit: int | None = None, after: int | None = None) -> list[ReviewItem]:
        """Items not yet reviewed, oldest first (at most ``limit`` of them).

        With ``after`` (a queue_id), only items stored after that one, in the order they
        were stored: how a reader pages through the queue (``QueueReader``). queue_id grows
        with each commit, since SQLite has one writer at a time, so an item that a worker
        adds while a reader pages is never behind the reader's mark.
        """
        if limit is not None and limit < 0:
            raise ValueError(f"limit must be 0 or more, got {limit}")
        where, order = "reviewed_at IS NULL", "queued_at, queue_id"
        if after is not None:
            where, order = f"reviewed_at IS NULL AND queue_id > {int(after)}", "queue_id"
        with self._connect() as conn:
            rows = conn.execute(
                f"SELECT {_COLUMNS} FROM review_items WHERE {where} ORDER BY {order} LIMIT ?",
                (-1 if limit is None else limit,),  # SQLite: a negative LIMIT is no limit
            ).fetchall()
        return [
            ReviewItem(
                queue_id=queue_id,
                post_id=post_id,
                text=text,
                parent_text=parent_text,
                lang=lang,
                reasons=json.loads(reasons),
                prediction=json.loads(prediction),
                model=model,
                created_at=created_at,
                queued_at=queued_at,
            )
            for (
                queue_id,
                post_id,
                text,
                parent_text,
                lang,
                reasons,
                prediction,
                model,
                created_at,
                queued_at,
            ) in rows
        ]

    def mark_done(self, ids: list[int]) -> int:
        """Mark items as reviewed so they leave the pending list; return how many changed."""
        reviewed_at = _utc_text(utc_now())
        with self._connect() as conn:
            cursor = conn.executemany(
                "UPDATE review_items SET reviewed_at = ?"
                " WHERE queue_id = ? AND reviewed_at IS NULL",
                [(reviewed_at, queue_id) for queue_id in ids],
            )
            return cursor.rowcount

    def __len__(self) -> int:
        """How many items are pending."""
        with self._connect() as conn:
            (count,) = conn.execute(
                "SELECT COUNT(*) FROM review_items WHERE reviewed_at IS NULL"
            ).fetchone()
        return count


class QueueReader:
    """One reviewer session's way through the queue: each pending item read once, in the
    order stored, however many service workers add items meanwhile."""

    def __init__(self, queue: ReviewQueue):
        self.queue = queue
        self.last_read = 0  # queue_id of the last item read (0: none yet)

    def next(self, limit: int | None = None) -> list[ReviewItem]:
        """The next pending items this session has not read yet."""
        items = self.queue.pending(limit, after=self.last_read)
        if items:
            self.last_read = items[-1].queue_id
        return items
