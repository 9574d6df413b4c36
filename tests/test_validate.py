"""`socialcare validate`: every kind of bad input is reported as file:line: field: message."""

import pytest

from socialcare.cli import main
from tests.conftest import post


def run(capsys, *paths) -> tuple[int, str]:
    code = main(["validate", *map(str, paths)])
    out = capsys.readouterr()
    return code, out.out + out.err


def test_good_file_passes(write_jsonl, capsys):
    path = write_jsonl(
        "ok.jsonl", [post("a"), post("b", "Tack för snabb hjälp!", labels=["praise"])]
    )
    code, output = run(capsys, path)
    assert code == 0
    assert "2 valid record(s); OK" in output


@pytest.mark.parametrize(
    ("line", "field", "message"),
    [
        (b"{not json", "line", "not valid JSON"),
        (
            b'{"id": "x", "text": "caf\xe9", "lang": "sv", "sentiment": "neutral"}',
            "line",
            "not valid UTF-8",
        ),
        (b'["a list"]', "line", "expected a JSON object"),
        (
            b'{"id": "x", "text": "ok", "lang": "sv", "labels": ["complain"]}',
            "labels",
            "unknown intent",
        ),
        (
            b'{"id": "x", "text": "ok", "lang": "sv", "labels": ["humour", "humour"]}',
            "labels",
            "repeated",
        ),
        (
            b'{"id": "x", "text": "ok", "lang": "se", "sentiment": "neutral"}',
            "lang",
            "not a labelled language",
        ),
        (b'{"id": "x", "lang": "sv", "sentiment": "neutral"}', "text", "is required"),
        (
            b'{"id": "x", "text": " ", "lang": "sv", "sentiment": "neutral"}',
            "text",
            "whitespace only",
        ),
        (
            b'{"id": "x", "text": "ok", "lang": "sv", "sentiment": "glad"}',
            "sentiment",
            "unknown sentiment",
        ),
        (
            b'{"id": "x", "text": "ok", "lang": "sv"}',
            "labels/sentiment",
            "needs 'labels', 'sentiment'",
        ),
        (
            b'{"id": "x", "text": "ok", "lang": "sv", "sentiment": "neutral", "labls": []}',
            "labls",
            "unknown field",
        ),
        (
            b'{"id": "x", "text": "ok", "lang": "sv", "labelled_at": "yesterday", '
            b'"sentiment": "neutral"}',
            "labelled_at",
            "datetime",
        ),
    ],
)
def test_each_bad_line_is_reported_with_file_line_and_field(
    write_jsonl, capsys, line, field, message
):
    path = write_jsonl("bad.jsonl", [post("good"), line])
    code, output = run(capsys, path)
    assert code == 1
    assert f"{path}:2: {field}: " in output
    assert message in output
    assert "Traceback" not in output


def test_empty_file_is_an_error(write_jsonl, capsys):
    path = write_jsonl("empty.jsonl", [])
    code, output = run(capsys, path)
    assert code == 1
    assert f"{path}: file: is empty" in output


def test_missing_path_and_empty_folder_are_errors(tmp_path, capsys):
    (tmp_path / "nothing").mkdir()
    code, output = run(capsys, tmp_path / "nothing", tmp_path / "absent.jsonl")
    assert code == 1
    assert "folder holds no *.jsonl files" in output
    assert "absent.jsonl: path: no such file or folder" in output


def test_folders_are_searched_recursively(write_jsonl, capsys, tmp_path):
    write_jsonl("a/one.jsonl", [post("1")])
    write_jsonl("a/b/two.jsonl", [post("2", "Helt annan text om bilen")])
    code, output = run(capsys, tmp_path / "a")
    assert code == 0
    assert "2 valid record(s)" in output


def test_exact_duplicate_within_a_file(write_jsonl, capsys):
    path = write_jsonl("d.jsonl", [post("1"), post("2")])
    code, output = run(capsys, path)
    assert code == 1
    assert f"{path}:2: text: exact duplicate of {path}:1 (id '1')" in output


def test_near_duplicate_across_files(write_jsonl, capsys):
    first = write_jsonl("one.jsonl", [post("1", "@user Ni är BÄST!! https://t.co/abc")])
    second = write_jsonl("two.jsonl", [post("2", "ni är bäst", labels=["praise"])])
    code, output = run(capsys, first, second)
    assert code == 1
    assert f"{second}:1: text: near-duplicate of {first}:1" in output


def test_a_reply_is_a_duplicate_only_under_the_same_parent(write_jsonl, capsys):
    replies = [
        post("1", "+1", parent_text="När får jag besked om min skada?"),
        post("2", "+1", labels=["praise"], sentiment="positive", parent_text="Tack för hjälpen!"),
        post("3", "+1 !!", parent_text="när får jag besked om min skada"),
    ]
    path = write_jsonl("replies.jsonl", replies)
    code, output = run(capsys, path)
    assert code == 1
    assert f"{path}:3: text: near-duplicate of {path}:1 (id '1')" in output
    assert f"{path}:2:" not in output


def test_same_post_labelled_again_is_not_a_duplicate(write_jsonl, capsys):
    first = write_jsonl("a.jsonl", [post("1", annotator="anna")])
    second = write_jsonl("b.jsonl", [post("1", annotator="bruno", labels=[])])
    code, output = run(capsys, first, second)
    assert code == 0, output


def test_id_reused_for_another_text(write_jsonl, capsys):
    path = write_jsonl("ids.jsonl", [post("1"), post("1", "Något helt annat om hemförsäkringen")])
    code, output = run(capsys, path)
    assert code == 1
    assert f"{path}:2: id: '1' already names another text at {path}:1" in output


def test_every_problem_is_reported_not_just_the_first(write_jsonl, capsys):
    path = write_jsonl("many.jsonl", [b"{", post("x", lang="de"), post("y", labels=["joke"])])
    code, output = run(capsys, path)
    assert code == 1
    assert all(f"{path}:{n}:" in output for n in (1, 2, 3))


def test_emoji_only_and_mention_only_posts_are_not_all_one_duplicate(write_jsonl, capsys):
    path = write_jsonl(
        "short.jsonl",
        [
            post("1", "🐶🐶🐶", labels=[]),
            post("2", "🙄", labels=[]),
            post("3", "@user", labels=[]),
            post("4", "@user @user", labels=[]),
        ],
    )
    code, output = run(capsys, path)
    assert code == 0, output


def test_writer_split_keeps_each_writer_in_one_split():
    from socialcare.core.schema import Post
    from socialcare.core.splits import writer_split

    posts = [
        Post(id=f"{lang}-{w}-{b}-{i}", text=f"post {lang} {w} {b} {i}", lang=lang,
             labels=[], sentiment="neutral", writer=f"{lang}-{w}-b{b:02d}")
        for lang in ("sv", "it") for w in "ef" for b in range(10) for i in range(10)
    ] + [
        Post(id=f"old-{i}", text=f"old {i}", lang="sv", labels=[], sentiment="neutral",
             writer="writer-sv-a")
        for i in range(50)
    ]  # fmt: skip
    splits = writer_split(posts, seed=3, train_only=frozenset({"writer-sv-a"}))
    assert sorted(p.id for s in splits.values() for p in s) == sorted(p.id for p in posts)
    writers = {name: {p.writer for p in split} for name, split in splits.items()}
    assert not writers["train"] & writers["validation"]
    assert not writers["train"] & writers["test"]
    assert not writers["validation"] & writers["test"]
    assert "writer-sv-a" in writers["train"]
    for lang, total in (("sv", 250), ("it", 200)):
        for name in ("validation", "test"):
            mine = [p for p in splits[name] if p.lang == lang]
            assert abs(len(mine) - 0.15 * total) <= 10, (lang, name, len(mine))
            # briefs of both writers e and f are held out
            assert {p.writer.split("-b")[0] for p in mine} == {f"{lang}-e", f"{lang}-f"}
    assert writer_split(posts, seed=3, train_only=frozenset({"writer-sv-a"})) == splits


def test_writer_split_deals_the_rare_label_to_every_split():
    from socialcare.core.schema import Post
    from socialcare.core.splits import writer_split

    def brief(w: str, b: int) -> list[Post]:
        rare = w == "e" and b < 6  # six of forty briefs, all by one writer
        return [
            Post(id=f"{w}-{b}-{i}", text=f"post {w} {b} {i}", lang="sv", sentiment="neutral",
                 labels=["factual_error"] if rare and i < 5 else ["complaint"],
                 writer=f"sv-{w}-b{b:02d}")
            for i in range(10)
        ]  # fmt: skip

    posts = [p for w in "efgh" for b in range(10) for p in brief(w, b)]
    splits = writer_split(posts, seed=5)
    rare = {name: sum("factual_error" in p.labels for p in s) for name, s in splits.items()}
    assert all(rare[name] >= 5 for name in splits), rare
    sizes = {name: len(s) for name, s in splits.items()}
    assert abs(sizes["validation"] - 60) <= 10 and abs(sizes["test"] - 60) <= 10, sizes
