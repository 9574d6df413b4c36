"""The reviewers' label store: append-only JSONL round files that lose nothing.

Each saved label is one complete ``Post`` record (with ``annotator``, ``labelled_at`` and
``source``) appended to ``data/labelled/round-<NNN>.jsonl``. Records are never edited: a
correction, or a second reviewer's label of the same post, is a new record with the same
``id`` and ``text``. ``socialcare validate`` accepts that (records.DuplicateIndex treats
the same id with the same text as another annotation of one post, and still flags a
different id with the same text as a duplicate post), and ``latest_labels`` resolves it:
the last record per (post, annotator) wins.

Why appends cannot break or lose a record:

- a record is serialised first and written with a single ``os.write`` on an ``O_APPEND``
  descriptor, so concurrent writers never interleave inside a line;
- writers hold an exclusive ``flock`` for the write and the ``fsync``, so two reviewers
  saving at once are serialised, and a save returns only once its line is on disk;
- a kernel killed inside ``write`` could in principle leave a partial line (Linux stops
  a write between pages on SIGKILL). The next writer sees, under the lock, that the file
  does not end in a newline, moves that never-acknowledged fragment to ``<file>.torn``
  and cuts the file back to its last complete line before appending. The loader
  (records.read_file) refuses any broken line with ``file:line``, never skipping it.
"""

import fcntl
import os
import re
import warnings
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path

from socialcare.core import paths
from socialcare.core.clock import utc_now
from socialcare.core.records import DataError, Problem, jsonl_files, load_posts
from socialcare.core.schema import Post

ROUND_NAME = "round-{:03d}.jsonl"
_ROUND_RE = re.compile(r"round-(\d{3,})\.jsonl")
TORN_SUFFIX = ".torn"


def round_path(number: int, directory: Path = paths.LABELLED_DIR) -> Path:
    """Path of labelling round ``number`` (1, 2, ...): ``<directory>/round-001.jsonl``."""
    if number < 1:
        raise ValueError(f"round numbers start at 1, got {number}")
    return Path(directory) / ROUND_NAME.format(number)


def round_files(directory: Path = paths.LABELLED_DIR) -> list[Path]:
    """The round files in ``directory``, oldest round first."""
    found = [
        (int(match.group(1)), path)
        for path in Path(directory).glob("round-*.jsonl")
        if (match := _ROUND_RE.fullmatch(path.name))
    ]
    return [path for _, path in sorted(found)]


def current_round(directory: Path = paths.LABELLED_DIR) -> Path:
    """The newest round file (where new labels go by default), or round 1 if there is none."""
    rounds = round_files(directory)
    return rounds[-1] if rounds else round_path(1, directory)


def make_label(
    post_id: str,
    text: str,
    lang: str | None,
    labels: Sequence[str],
    sentiment: str | None,
    annotator: str,
    source: str,
    labelled_at: datetime | None = None,
    parent_text: str | None = None,
) -> Post:
    """A validated label record; ``labelled_at`` defaults to now (UTC). A reply keeps its
    ``parent_text``: its labels are what it means under that parent.

    Raises ValueError naming the field and the fix (no reviewer name, language not set,
    unknown label...), before anything is written.
    """
    if not annotator or not annotator.strip():
        raise ValueError("annotator: enter your name before saving labels")
    if lang is None:
        raise ValueError("lang: the post's language is not known; choose sv or it (or skip it)")
    return Post(
        id=post_id,
        text=text,
        lang=lang,
        labels=list(labels),
        sentiment=sentiment,
        annotator=annotator.strip(),
        labelled_at=labelled_at or utc_now(),
        source=source,
        parent_text=parent_text,
    )


def append_label(path: Path, record: Post) -> None:
    """Append one record to ``path`` durably and atomically; returns once it is on disk.

    Safe with any number of concurrent writers (processes or machines sharing a POSIX
    file system with working ``flock``).
    """
    line = (record.model_dump_json(exclude_none=True) + "\n").encode("utf-8")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    created = not path.exists()
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by close(), also when the process dies
        _cut_torn_tail(fd, path)
        written = os.write(fd, line)
        if written != len(line):  # disk full or similar: take the fragment back at once
            os.ftruncate(fd, os.fstat(fd).st_size - written)
            raise OSError(f"{path}: only {written} of {len(line)} bytes written; nothing saved")
        os.fsync(fd)
    finally:
        os.close(fd)
    if created:  # make the new directory entry durable too
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)


def _cut_torn_tail(fd: int, path: Path) -> None:
    """If the file does not end in a newline, a writer died mid-line: set the fragment aside.

    Called under the lock. The fragment was never acknowledged to its reviewer (a save
    returns only after the whole line is written and synced), so cutting it loses no
    saved label; it is kept in ``<file>.torn`` for inspection all the same.
    """
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return
    # Find the end of the last complete line, reading backwards in blocks.
    end = size
    keep = 0
    while end > 0:
        start = max(0, end - 65536)
        block = os.pread(fd, end - start, start)
        newline = block.rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    fragment = os.pread(fd, size - keep, keep)
    torn = path.with_name(path.name + TORN_SUFFIX)
    with torn.open("ab") as handle:
        handle.write(fragment + b"\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.ftruncate(fd, keep)
    warnings.warn(
        f"{path}: an unfinished line ({len(fragment)} bytes) from an interrupted save was "
        f"moved to {torn}; every complete record is kept",
        stacklevel=3,
    )


def repair(path: Path) -> int:
    """Set aside an unfinished last line left by a killed save; return the bytes moved.

    The next ``append_label`` does the same, so this is only needed to read a round file
    that nobody has saved to since the crash.
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        before = os.fstat(fd).st_size
        _cut_torn_tail(fd, Path(path))
        return before - os.fstat(fd).st_size
    finally:
        os.close(fd)


def _has_torn_tail(path: Path) -> bool:
    with path.open("rb") as handle:
        if handle.seek(0, os.SEEK_END) == 0:
            return False
        handle.seek(-1, os.SEEK_END)
        return handle.read(1) != b"\n"


def _round_order(path: Path) -> tuple[int, str]:
    match = _ROUND_RE.fullmatch(path.name)
    return (int(match.group(1)) if match else 0, str(path))


def read_labels(sources: Iterable[str | Path] = (paths.LABELLED_DIR,)) -> list[Post]:
    """Every label record of the given files/folders, in append order.

    Files are read by round number (round-002 after round-001, so a later round's
    correction comes later), each in line order. Raises records.DataError naming
    ``file:line: field`` for any broken record; nothing is skipped.
    """
    files, problems = jsonl_files(sources)
    files.sort(key=_round_order)
    for path in files:
        if _has_torn_tail(path):
            problems.append(
                Problem(
                    path,
                    path.read_bytes().count(b"\n") + 1,
                    "line",
                    "unfinished line from an interrupted save (never acknowledged); "
                    "run socialcare.core.label_store.repair(path) or save another label",
                )
            )
    if problems:
        raise DataError(problems)
    return load_posts(files)


def latest_labels(sources: Iterable[str | Path] = (paths.LABELLED_DIR,)) -> list[Post]:
    """One record per (post id, annotator): the last one appended, so corrections win.

    "Last" is append order (see ``read_labels``), not ``labelled_at``: the lock makes file
    order the true order of saves, while reviewers' clocks may differ. The result is in
    the order each (post, annotator) was first labelled.
    """
    latest: dict[tuple[str, str | None], Post] = {}
    for record in read_labels(sources):
        latest[(record.id, record.annotator)] = record  # an existing key keeps its position
    return list(latest.values())


def describe(path: Path) -> str:
    """A few lines on a round file for the notebook: records, current labels, validation."""
    from socialcare.core.records import validate

    path = Path(path)
    if not path.exists():
        return f"{path}: no labels saved yet"
    count, problems = validate([path])
    if problems:
        return f"{path}: {len(problems)} problem(s):\n" + "\n".join(map(str, problems))
    latest = latest_labels([path])
    annotators = sorted({p.annotator or "?" for p in latest})
    lines = [
        f"{path}: {count} records, {len(latest)} current labels after corrections "
        f"(by {', '.join(annotators)}); socialcare validate: OK"
    ]
    lines += [
        f"  {p.annotator}  {p.id}  {p.lang}  {'+'.join(p.labels or []) or '(no intent)'}  "
        f"{p.sentiment}"
        for p in latest[-10:]
    ]
    return "\n".join(lines)
