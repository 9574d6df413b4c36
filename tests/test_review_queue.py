"""The review queue: round trip, masking on write, concurrent writers, marking done."""

import multiprocessing
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from socialcare.core.review_queue import ReviewItem, ReviewQueue

QUEUED = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def item(n: int = 0, text: str = "Hur går det med min ersättning?", **fields) -> ReviewItem:
    values = {
        "post_id": f"sv-{n}",
        "text": text,
        "lang": "sv",
        "reasons": ["uncertain: complaint 0.48 near 0.45"],
        "prediction": {
            "labels": ["question"],
            "intents": {"question": 0.91},
            "sentiment": "neutral",
        },
        "model": "socialcare-classifier:test",
        "created_at": QUEUED - timedelta(minutes=5),
        "queued_at": QUEUED + timedelta(seconds=n),
    }
    return ReviewItem(**(values | fields))


def test_round_trip_oldest_first(tmp_path):
    queue = ReviewQueue(tmp_path / "var" / "queue.sqlite")  # parent folder created
    assert len(queue) == 0 and queue.pending() == []
    newer, older = item(2, text="Grazie! 🙏", lang="it"), item(1, created_at=None)
    assert queue.add([newer, older]) == 2

    pending = queue.pending()
    assert [p.post_id for p in pending] == ["sv-1", "sv-2"]
    first, second = pending
    assert first.model_dump(exclude={"queue_id"}) == older.model_dump(exclude={"queue_id"})
    assert second.model_dump(exclude={"queue_id"}) == newer.model_dump(exclude={"queue_id"})
    assert second.queued_at.tzinfo is not None and first.created_at is None
    assert first.queue_id is not None and first.queue_id != second.queue_id
    assert [p.post_id for p in queue.pending(limit=1)] == ["sv-1"]
    assert len(queue) == 2


def test_naive_times_are_stored_as_utc(tmp_path):
    queue = ReviewQueue(tmp_path / "queue.sqlite")
    queue.add(
        [item(created_at=datetime(2026, 11, 20, 9, 30), queued_at=datetime(2026, 11, 20, 10))]
    )
    (stored,) = queue.pending()
    assert stored.created_at == datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
    assert stored.queued_at == datetime(2026, 11, 20, 10, tzinfo=UTC)


def test_text_is_masked_before_it_is_stored(tmp_path):
    path = tmp_path / "queue.sqlite"
    raw = "Ring mig på 070-123 45 67 eller anna@example.se, skadenummer 12345678"
    queue = ReviewQueue(path)
    queue.add([item(text=raw)])

    # Read the row itself, not through the queue: the unmasked text must not be there.
    with closing(sqlite3.connect(path)) as conn:
        (stored,) = conn.execute("SELECT text FROM review_items").fetchone()
    assert stored == "Ring mig på [phone] eller [email], skadenummer [policy_number]"
    # ...nor anywhere on disk: the database and its write-ahead log.
    files = sorted(tmp_path.glob("queue.sqlite*"))
    assert any(b"[phone]" in f.read_bytes() for f in files)
    assert not any(b"070-123" in f.read_bytes() or b"anna@" in f.read_bytes() for f in files)
    assert queue.pending()[0].text == stored


def test_a_replys_parent_is_stored_masked_and_read_back(tmp_path):
    path = tmp_path / "queue.sqlite"
    queue = ReviewQueue(path)
    parent = "Ring mig på 070-123 45 67, ingen svarar om skadan"
    queue.add([item(1, text="samma här", parent_text=parent), item(2)])

    with closing(sqlite3.connect(path)) as conn:
        stored = conn.execute("SELECT parent_text FROM review_items ORDER BY queue_id").fetchall()
    assert stored == [("Ring mig på [phone], ingen svarar om skadan",), (None,)]
    assert [p.parent_text for p in queue.pending()] == [stored[0][0], None]


def test_a_queue_file_from_before_parent_text_is_migrated_on_open(tmp_path):
    path = tmp_path / "queue.sqlite"
    # The table as the first release wrote it, with one pending post.
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(
            "CREATE TABLE review_items (queue_id INTEGER PRIMARY KEY AUTOINCREMENT,"
            " post_id TEXT, text TEXT NOT NULL, lang TEXT, reasons TEXT NOT NULL,"
            " prediction TEXT NOT NULL, model TEXT NOT NULL, created_at TEXT,"
            " queued_at TEXT NOT NULL, reviewed_at TEXT)"
        )
        conn.execute(
            "INSERT INTO review_items (post_id, text, lang, reasons, prediction, model,"
            " queued_at) VALUES ('old-1', 'Hej', 'sv', '[]', '{}', 'm', ?)",
            (QUEUED.isoformat(),),
        )

    queue = ReviewQueue(path)
    queue.add([item(1, parent_text="Förälder")])
    assert [(p.post_id, p.parent_text) for p in queue.pending()] == [
        ("old-1", None),
        ("sv-1", "Förälder"),
    ]
    ReviewQueue(path)  # opening it again finds the column there: no second ALTER


def test_mark_done_takes_items_off_the_pending_list_and_keeps_them(tmp_path):
    path = tmp_path / "queue.sqlite"
    queue = ReviewQueue(path)
    queue.add([item(n) for n in range(4)])
    first, second, *_ = queue.pending()

    assert queue.mark_done([first.queue_id, second.queue_id]) == 2
    assert [p.post_id for p in queue.pending()] == ["sv-2", "sv-3"]
    assert len(queue) == 2
    assert queue.mark_done([first.queue_id, 999]) == 0  # already done / unknown: no change

    with closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT post_id, reviewed_at FROM review_items ORDER BY 1").fetchall()
    assert len(rows) == 4  # nothing deleted
    assert [post_id for post_id, reviewed_at in rows if reviewed_at] == ["sv-0", "sv-1"]


def test_negative_limit_is_refused(tmp_path):
    with pytest.raises(ValueError, match="limit"):
        ReviewQueue(tmp_path / "queue.sqlite").pending(limit=-1)


def _add_many(path: str, worker: int, batches: int, start: "multiprocessing.Event") -> None:
    """One service worker: wait for the others, then add ``batches`` small batches."""
    queue = ReviewQueue(Path(path))
    start.wait()
    for batch in range(batches):
        queue.add(
            [
                item(1000 * worker + 10 * batch + i, post_id=f"w{worker}-{batch}-{i}")
                for i in range(3)
            ]
        )


def test_concurrent_writers_lose_nothing_while_a_reader_reads(tmp_path):
    path = tmp_path / "var" / "queue.sqlite"
    workers, batches = 3, 40
    # "spawn": fresh interpreters, as separate service worker processes are.
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    processes = [
        context.Process(target=_add_many, args=(str(path), w, batches, start))
        for w in range(workers)
    ]
    for process in processes:
        process.start()
    reader = ReviewQueue(path)
    start.set()
    seen = []
    while any(process.is_alive() for process in processes):
        seen.append(len(reader.pending()))  # the notebook reading while workers write
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0

    pending = reader.pending()
    expected = {f"w{w}-{b}-{i}" for w in range(workers) for b in range(batches) for i in range(3)}
    assert {p.post_id for p in pending} == expected
    assert len(pending) == len(reader) == workers * batches * 3
    assert len({p.queue_id for p in pending}) == len(pending)
    assert seen == sorted(seen)  # the reader only ever saw the queue grow
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_threads_share_one_queue(tmp_path):
    queue = ReviewQueue(tmp_path / "queue.sqlite")
    with ThreadPoolExecutor(max_workers=4) as pool:
        added = list(pool.map(lambda n: queue.add([item(n), item(n + 100)]), range(20)))
    assert sum(added) == 40
    assert len(queue) == 40 and len({p.queue_id for p in queue.pending()}) == 40
