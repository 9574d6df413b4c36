"""Reading and validating JSONL files of posts, with errors that name file, line and field."""

import csv
import io
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ValidationError

from socialcare.core.errors import describe_errors
from socialcare.core.schema import Post
from socialcare.core.text import post_key


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a data file, printed as ``file:line: field: message``."""

    path: Path
    line: int  # 0 when the problem is about the whole file
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.field}: {self.message}"


class DataError(ValueError):
    """Raised when data files hold problems; carries every one of them."""

    def __init__(self, problems: list[Problem]):
        self.problems = problems
        shown = "\n".join(str(p) for p in problems[:20])
        more = f"\n... and {len(problems) - 20} more" if len(problems) > 20 else ""
        super().__init__(f"{len(problems)} problem(s) in the data:\n{shown}{more}")


def jsonl_files(paths: Iterable[str | Path]) -> tuple[list[Path], list[Problem]]:
    """Expand files and folders (searched recursively for ``*.jsonl``) into a sorted file list."""
    files: list[Path] = []
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(path.rglob("*.jsonl"))
            if not found:
                problems.append(Problem(path, 0, "path", "folder holds no *.jsonl files"))
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            problems.append(Problem(path, 0, "path", "no such file or folder"))
    return files, problems


def parse_line(
    path: Path, line_no: int, raw: bytes, schema: type[BaseModel] = Post
) -> BaseModel | list[Problem]:
    """Parse one raw line into a record of ``schema``, or return what is wrong with it."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        return [
            Problem(
                path,
                line_no,
                "line",
                f"not valid UTF-8 (byte {raw[err.start]:#04x} at "
                f"column {err.start + 1}); save the file as UTF-8",
            )
        ]
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as err:
        return [Problem(path, line_no, "line", f"not valid JSON ({err.msg} at column {err.colno})")]
    if not isinstance(obj, dict):
        return [
            Problem(path, line_no, "line", f"expected a JSON object, found {type(obj).__name__}")
        ]
    return validate_record(path, line_no, obj, schema)


def validate_record(
    path: Path, line_no: int, obj: dict, schema: type[BaseModel] = Post
) -> BaseModel | list[Problem]:
    """A record of ``schema`` made from ``obj``, or its problems as ``file:line: field``."""
    try:
        return schema.model_validate(obj)
    except ValidationError as err:
        # An error of the whole record is the model validator's: no labels of either kind.
        described = describe_errors(err, whole="labels/sentiment", allowed=schema.model_fields)
        return [Problem(path, line_no, field, message) for field, message in described]


def read_file(
    path: Path, schema: type[BaseModel] = Post
) -> Iterator[tuple[int, BaseModel | list[Problem]]]:
    """Yield ``(line number, record or problems)`` for each non-blank line, streaming."""
    seen_record = False
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            parsed = parse_file_line(path, line_no, raw, schema)
            if parsed is not None:
                seen_record = True
                yield line_no, parsed
    if not seen_record:
        yield 0, [empty_file(path)]


def parse_file_line(
    path: Path, line_no: int, raw: bytes, schema: type[BaseModel] = Post
) -> BaseModel | list[Problem] | None:
    """Line ``line_no`` of a JSONL file as read: None when blank, else `parse_line`'s answer.
    (The Spark path reads files line by line through this too.)"""
    if line_no == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")  # tolerate a UTF-8 byte-order mark
    if not raw.strip():
        return None
    return parse_line(path, line_no, raw.rstrip(b"\r\n"), schema)


def empty_file(path: Path) -> Problem:
    return Problem(path, 0, "file", "is empty: no records")


def line_id(line_no: int) -> str:
    """The id of a post that has none: its line in the file it was read from."""
    return f"line-{line_no}"


def read_csv(
    path: Path, schema: type[BaseModel] = Post
) -> Iterator[tuple[int, BaseModel | list[Problem]]]:
    """Like ``read_file`` for a UTF-8 CSV file whose header row names the fields.

    Empty cells are left out (a missing ``lang`` stays unknown). Line numbers are those of
    the row's first line in the file, so a quoted multi-line text is still found.
    """
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line_no = raw.count(b"\n", 0, err.start) + 1
        yield line_no, [Problem(path, line_no, "line", "not valid UTF-8; save the file as UTF-8")]
        return
    reader = csv.DictReader(io.StringIO(text, newline=""))
    if not reader.fieldnames:
        yield 0, [Problem(path, 0, "file", "is empty: expected a header row, then one post a row")]
        return
    seen_record = False
    start = reader.line_num + 1
    for row in reader:
        seen_record = True
        if None in row:
            yield (
                start,
                [
                    Problem(
                        path,
                        start,
                        "line",
                        "more cells than the header has columns; quote texts that hold commas",
                    )
                ],
            )
        else:
            yield start, validate_record(path, start, {k: v for k, v in row.items() if v}, schema)
        start = reader.line_num + 1
    if not seen_record:
        yield 0, [Problem(path, 0, "file", "has a header but no rows")]


class DuplicateIndex:
    """Finds posts that repeat another post's text (exactly or after normalisation).

    The same id with the same text is another annotation of one post (a second
    labeller, a correction): allowed. A different id with the same normalised text is
    a duplicate post; the same id with another text is an id clash.
    """

    def __init__(self) -> None:
        self._by_key: dict[str, tuple[Path, int, Post]] = {}
        self._by_id: dict[str, tuple[Path, int, Post]] = {}
        self._annotations: set[tuple[str, str | None, object]] = set()

    def add(self, path: Path, line_no: int, post: Post) -> list[Problem]:
        problems = []
        first = self._by_id.get(post.id)
        if first is not None and first[2].text != post.text:
            problems.append(
                Problem(
                    path,
                    line_no,
                    "id",
                    f"{post.id!r} already names another "
                    f"text at {first[0]}:{first[1]}; give this post a new id",
                )
            )
        annotation = (post.id, post.annotator, post.labelled_at)
        if first is not None and first[2].text == post.text and annotation in self._annotations:
            problems.append(
                Problem(
                    path,
                    line_no,
                    "id",
                    f"{post.id!r} repeats the record at "
                    f"{first[0]}:{first[1]} (same annotator and time)",
                )
            )
        self._annotations.add(annotation)
        self._by_id.setdefault(post.id, (path, line_no, post))

        key = post_key(post.text, post.parent_text)
        other = self._by_key.get(key)
        if other is not None and other[2].id != post.id:
            kind = "exact duplicate" if other[2].text == post.text else "near-duplicate"
            problems.append(
                Problem(
                    path, line_no, "text", f"{kind} of {other[0]}:{other[1]} (id {other[2].id!r})"
                )
            )
        self._by_key.setdefault(key, (path, line_no, post))
        return problems


def validate(paths: Iterable[str | Path]) -> tuple[int, list[Problem]]:
    """Check every record of the given files/folders; return (records read, problems)."""
    files, problems = jsonl_files(paths)
    duplicates = DuplicateIndex()
    count = 0
    for path in files:
        for line_no, parsed in read_file(path):
            if isinstance(parsed, list):
                problems.extend(parsed)
                continue
            count += 1
            problems.extend(duplicates.add(path, line_no, parsed))
    return count, problems


def load_posts(paths: Iterable[str | Path]) -> list[Post]:
    """Read posts from files/folders; raise DataError listing every problem if any."""
    files, problems = jsonl_files(paths)
    posts = []
    for path in files:
        for _, parsed in read_file(path):
            if isinstance(parsed, list):
                problems.extend(parsed)
            else:
                posts.append(parsed)
    if problems:
        raise DataError(problems)
    return posts


def write_posts(path: Path, posts: Iterable[Post]) -> None:
    """Write posts as JSONL (UTF-8, unset optional fields left out), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    with tmp.open("w", encoding="utf-8") as handle:
        for post in posts:
            handle.write(post.model_dump_json(exclude_none=True) + "\n")
    tmp.replace(path)
