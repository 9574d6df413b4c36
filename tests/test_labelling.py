"""The labelling widget's logic (no browser), its sources, and the notebook run headless."""

import html
import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from socialcare.core import paths
from socialcare.core.label_store import latest_labels, read_labels
from socialcare.core.labels import INTENTS, LANGS, SENTIMENTS
from socialcare.core.records import DataError
from socialcare.core.review_queue import ReviewItem, ReviewQueue
from socialcare.core.schema import IncomingPost
from socialcare.review.guide import GUIDE_SUMMARY
from socialcare.review.items import (
    EXAMPLE_POSTS,
    EXAMPLE_ROUND_FILE,
    EXAMPLES_DIR,
    QUEUE,
    default_round_file,
    load_items,
    post_id_for,
    suggest,
)
from socialcare.review.labelling import (
    ACTION_KEYS,
    INTENT_KEYS,
    KEYS,
    LANG_KEYS,
    SENTIMENT_KEYS,
    Counts,
    LabellingApp,
    keys_html,
)
from socialcare.runtime.classify import classify_posts
from socialcare.runtime.predictor import Predictor

NOTEBOOK = paths.REPO_ROOT / "notebooks" / "label_posts.ipynb"


def test_example_files_load_with_ids_languages_and_channels():
    items = load_items(EXAMPLE_POSTS)
    assert 15 <= len(items) <= 30
    assert {item.lang for item in items} >= {"sv", "it", None}  # one left for the reviewer
    assert all(item.source in {"facebook", "instagram", "x", "forum", "review"} for item in items)
    assert len({item.post_id for item in items}) == len(items)

    rows = load_items(EXAMPLES_DIR / "posts.csv")
    assert [item.lang for item in rows] == ["sv", "sv", "it", None]
    # A row without an id gets one made from its text: the same post always the same id.
    assert rows[-1].post_id == post_id_for(rows[-1].text)
    assert rows[-1].source == "forum"


def test_bad_input_files_are_refused_with_file_line_and_field(tmp_path):
    csv_path = tmp_path / "posts.csv"
    csv_path.write_text('id,text\na,"ok, fine"\nb,\nc,"one",two\n', encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_items(csv_path)
    message = str(err.value)
    assert f"{csv_path}:3: text: is required" in message
    assert f"{csv_path}:4: line: more cells than the header" in message

    jsonl_path = tmp_path / "posts.jsonl"
    jsonl_path.write_text('{"id": "a", "text": "ok"}\n{"id": "b"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=f"{jsonl_path}:2: text: is required"):
        load_items(jsonl_path)
    text_path = tmp_path / "posts.txt"
    text_path.write_text("text\n", encoding="utf-8")
    with pytest.raises(ValueError, match="use .jsonl or .csv"):
        load_items(text_path)
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_items(tmp_path / "absent.jsonl")


def test_example_labels_never_go_to_the_training_data():
    assert default_round_file(EXAMPLE_POSTS) == EXAMPLE_ROUND_FILE
    assert paths.DATA_DIR not in EXAMPLE_ROUND_FILE.parents
    assert default_round_file(QUEUE).parent == paths.LABELLED_DIR


def test_the_guide_summary_covers_exactly_the_label_set():
    assert tuple(GUIDE_SUMMARY) == INTENTS


def app_for(tmp_path: Path, annotator: str = "anna", model=None, **kwargs) -> LabellingApp:
    return LabellingApp(tmp_path / "round-001.jsonl", annotator, EXAMPLE_POSTS, model, **kwargs)


def test_without_a_model_posts_come_in_source_order_with_a_blank_form(tmp_path):
    app = app_for(tmp_path)
    assert "No model chosen" in app.model_note
    assert [app.items[i].post_id for i in app.order] == [i.post_id for i in app.items]
    assert app.current.post_id == "ex-sv-01"
    assert app.form() == ([], None, "sv")


def test_save_skip_back_and_a_correction(tmp_path):
    app = app_for(tmp_path)
    first = app.current
    app.fill(["complaint"], "negative")
    app.save_button.click()  # what the button does is what the reviewer gets
    assert "Saved ex-sv-01" in app.status
    second = app.current
    assert second.post_id == "ex-sv-02"

    app.skip_button.click()
    third = app.current
    assert app.summary() == "1 labelled, 1 skipped, 18 to go"

    app.back_button.click()
    app.back_button.click()
    assert app.current is first
    assert app.form() == (["complaint"], "negative", "sv")  # the saved label, pre-filled
    assert "saving again adds a correction" in app.post_html.value
    app.fill(["complaint", "question"])
    record = app.save()
    assert "Corrected ex-sv-01" in app.status
    assert record.labels == ["complaint", "question"]
    assert app.current is second  # the next post not yet labelled (the skipped one)
    assert third is not second

    records = read_labels([app.round_file])
    assert [(r.id, r.labels) for r in records] == [
        ("ex-sv-01", ["complaint"]),
        ("ex-sv-01", ["complaint", "question"]),
    ]
    assert all(r.annotator == "anna" and r.source == "facebook" for r in records)
    assert records[0].labelled_at <= records[1].labelled_at <= datetime.now(UTC)
    assert [r.labels for r in latest_labels([app.round_file])] == [["complaint", "question"]]


@pytest.mark.parametrize(
    ("annotator", "fill", "message"),
    [
        ("", {"sentiment": "neutral"}, "annotator: enter your name"),
        ("anna", {}, "sentiment: choose one"),
    ],
)
def test_an_incomplete_form_is_refused_and_nothing_is_written(tmp_path, annotator, fill, message):
    app = app_for(tmp_path, annotator="anna")
    app.name_box.value = annotator
    app.fill(**fill)
    shown = app.current
    assert app.save() is None
    assert message in app.status and "color:#c00" in app.status_html.value
    assert app.current is shown
    assert not app.round_file.exists()


def test_a_post_of_unknown_language_needs_the_reviewer_to_choose_it(tmp_path):
    source = tmp_path / "posts.csv"
    source.write_text("text\nQualcuno sa come si fa la denuncia online?\n", encoding="utf-8")
    app = LabellingApp(tmp_path / "round-001.jsonl", "anna", source)
    app.fill(["question"], "neutral")
    assert app.save() is None and "lang: the post's language is not known" in app.status
    app.fill(lang="it")
    record = app.save()
    assert record.lang == "it" and record.source == "file:posts.csv"
    assert app.current is None and "All 1 posts done" in app.post_html.value
    assert app.save_button.disabled


def test_what_validate_would_refuse_is_refused_at_save(tmp_path, capsys):
    from socialcare.cli import main

    source = tmp_path / "posts.csv"
    source.write_text(
        "id,text,lang\n"
        "a,Sex veckor utan besked om skadan!,sv\n"
        "b,@user sex veckor utan besked om skadan,sv\n"  # the same post, copied
        "a,Ett helt annat inlägg med samma id,sv\n",
        encoding="utf-8",
    )
    app = LabellingApp(tmp_path / "round-001.jsonl", "anna", source)
    app.fill(["complaint"], "negative")
    assert app.save() is not None
    assert "a copy of post 'a', already labelled" in html.unescape(app.post_html.value)
    app.fill(["complaint"], "negative")
    assert app.save() is None and "text: a copy of post 'a'" in app.status
    app.skip()
    app.fill([], "neutral")
    assert app.save() is None and "id: 'a' already names another text" in app.status
    assert main(["validate", str(app.round_file)]) == 0, capsys.readouterr().out


def test_a_reviewer_resumes_where_they_stopped_and_others_start_afresh(tmp_path):
    app = app_for(tmp_path)
    for _ in range(2):
        app.fill(sentiment="neutral")
        app.save()
    again = app_for(tmp_path)
    assert again.current.post_id == "ex-sv-03"
    assert "2 already labelled by you" in again.status
    other = app_for(tmp_path, annotator="bruno")
    assert other.current.post_id == "ex-sv-01"


def test_suggestions_are_pre_filled_with_probabilities_in_uncertainty_order(
    tmp_path, baseline_model
):
    app = app_for(tmp_path, model=baseline_model)
    assert f"Suggestions from the model {baseline_model}" in app.model_note
    posts = [IncomingPost(text=item.text, lang=item.lang) for item in app.items]
    answers = classify_posts(Predictor(baseline_model), posts)
    uncertainties = [app.items[i].uncertainty for i in app.order]
    assert uncertainties[0] == max(uncertainties)  # the most uncertain post first

    shown = app.order[0]
    # The reviewer sees why the post came first: its least certain decision.
    about = app.items[shown].uncertain_about
    assert f"uncertainty {uncertainties[0]:.2f} ({about})" in html.unescape(app.post_html.value)
    expected = answers[shown]
    labels, sentiment, _ = app.form()
    assert labels == expected.labels and sentiment == expected.sentiment.label
    for name, box in app.intent_boxes.items():
        assert box.description == f"{name}  {expected.intents[name]:.2f}"
    assert [label for label, _ in app.sentiment_buttons.options] == [
        f"{name} {expected.sentiment.scores[name]:.2f}" for name in SENTIMENTS
    ]


def test_review_queue_posts_come_with_the_services_suggestion_and_leave_once_saved(tmp_path):
    queue = ReviewQueue(tmp_path / "queue.sqlite")

    def queued(post_id, text, complaint, scores):
        return ReviewItem(
            post_id=post_id,
            text=text,
            lang="sv",
            reasons=[f"uncertain: complaint {complaint:.2f}"],
            prediction={
                "labels": ["complaint"] if complaint >= 0.5 else [],
                "intents": dict.fromkeys(INTENTS, 0.01) | {"complaint": complaint},
                "sentiment": {
                    "label": "negative",
                    "scores": dict(zip(SENTIMENTS, scores, strict=True)),
                },
            },
            model="socialcare-classifier:v1",
        )

    queue.add(
        [
            queued("fb-1", "Tack för hjälpen med bilen, snabbt och smidigt.", 0.05, (0, 0, 1)),
            queued(None, "Sex veckor utan besked om skadan. Ring mig @user", 0.52, (0.5, 0.4, 0.1)),
        ]
    )
    app = LabellingApp(tmp_path / "round-001.jsonl", "anna", QUEUE, "", queue_path=queue.path)
    item = app.current
    assert item.text.startswith("Sex veckor")  # the uncertain one first, not the oldest
    assert item.post_id == post_id_for(item.text)  # queued without an id
    assert "uncertain: complaint 0.52" in app.post_html.value
    assert app.form() == (["complaint"], "negative", "sv")
    assert app.intent_boxes["complaint"].description == "complaint  0.52"

    record = app.save()
    assert record.source == "review-queue" and record.id == item.post_id
    assert [p.post_id for p in queue.pending()] == ["fb-1"]  # done, after the save
    assert app.current.post_id == "fb-1"

    # Loading the queue again in this session adds what was queued since, once.
    queue.add([queued("fb-3", "Grazie mille, tutto risolto!", 0.02, (0, 0.1, 0.9))])
    assert app.load() == 1
    assert sorted(item.post_id for item in app.items) == sorted([item.post_id, "fb-1", "fb-3"])
    assert app.load() == 0  # nothing new: nothing read twice
    assert len(app.items) == 3


def test_the_notebook_runs_headless_and_saves_through_the_buttons(
    run_notebook, tmp_path, baseline_model, capsys
):
    from socialcare.cli import main

    round_file = tmp_path / "labels" / "round-001.jsonl"
    notebook = run_notebook(
        NOTEBOOK,
        env={
            "SOCIALCARE_REVIEWER": "nb-reviewer",
            "SOCIALCARE_SOURCE": str(EXAMPLE_POSTS),
            "SOCIALCARE_MODEL": str(baseline_model),
            "SOCIALCARE_ROUND_FILE": str(round_file),
            "SOCIALCARE_DEMO": "1",
        },
    )
    output = _text_of(notebook)
    assert "Suggestions from the model" in output
    assert "Corrected" in output and "socialcare validate: OK" in output

    records = read_labels([round_file])
    assert len(records) == 3 and {r.annotator for r in records} == {"nb-reviewer"}
    assert records[1].id == records[2].id  # the correction is a new record
    assert len(latest_labels([round_file])) == 2
    # The first save kept the model's pre-filled suggestion.
    first = records[0]
    post = IncomingPost(text=first.text, lang=first.lang)
    [predicted] = classify_posts(Predictor(baseline_model), [post])
    assert first.labels == predicted.labels
    assert first.sentiment == predicted.sentiment.label
    assert main(["validate", str(round_file)]) == 0, capsys.readouterr().out


def test_the_notebook_runs_without_a_model(run_notebook, tmp_path):
    round_file = tmp_path / "round-001.jsonl"
    notebook = run_notebook(
        NOTEBOOK,
        env={
            "SOCIALCARE_REVIEWER": "nb-reviewer",
            "SOCIALCARE_SOURCE": str(EXAMPLES_DIR / "posts.csv"),
            "SOCIALCARE_MODEL": "",
            "SOCIALCARE_ROUND_FILE": str(round_file),
            "SOCIALCARE_DEMO": "1",
        },
    )
    assert "No model chosen" in _text_of(notebook)
    assert [r.id for r in latest_labels([round_file])] == ["ex-csv-sv-1", "ex-csv-sv-2"]


def _text_of(notebook) -> str:
    return "\n".join(
        output.get("text", "") or json.dumps(output.get("data", {}).get("text/plain", ""))
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.outputs
    )


def test_a_reply_is_shown_under_its_parent_and_saved_with_it(tmp_path):
    source = tmp_path / "replies.jsonl"
    post = {"id": "r-1", "text": "samma här", "lang": "sv", "parent_text": "Ingen svarar <b>"}
    source.write_text(json.dumps(post, ensure_ascii=False) + "\n", encoding="utf-8")
    app = LabellingApp(tmp_path / "round-001.jsonl", "anna", source, "")
    assert "in reply to: Ingen svarar &lt;b&gt;" in app.post_html.value  # escaped
    app.fill(["complaint"], "negative")
    record = app.save()
    assert record.parent_text == "Ingen svarar <b>" and record.labels == ["complaint"]
    assert read_labels([tmp_path / "round-001.jsonl"])[0].parent_text == "Ingen svarar <b>"


def key(name: str, **flags) -> dict:
    """A key press as ipyevents sends it to the kernel."""
    return {"type": "keydown", "key": name, **flags}


def test_the_key_map_has_one_key_per_label_and_is_shown_in_the_widget(tmp_path):
    assert tuple(INTENT_KEYS.values()) == INTENTS
    assert tuple(INTENT_KEYS) == ("1", "2", "3", "4", "5")
    assert set(SENTIMENT_KEYS.values()) == set(SENTIMENTS)
    assert set(LANG_KEYS.values()) == set(LANGS)
    assert set(ACTION_KEYS.values()) == {"save", "skip", "back"}
    groups = (INTENT_KEYS, SENTIMENT_KEYS, LANG_KEYS, ACTION_KEYS)
    assert len(KEYS) == sum(map(len, groups))  # no key does two things

    shown = re.sub("<[^>]+>", "", html.unescape(keys_html()))  # the text, without the tags
    assert "1 complaint, 2 question" in shown and "u neutral" in shown and "i it" in shown
    assert "Enter or s save, k or → skip, b or ← back" in shown
    app = app_for(tmp_path)
    assert any(keys_html() == child.value for child in _html_widgets(app.widget))


def _html_widgets(widget):
    """Every HTML widget inside ``widget``."""
    import ipywidgets as widgets

    if isinstance(widget, widgets.HTML):
        yield widget
    for child in getattr(widget, "children", ()):
        yield from _html_widgets(child)


def test_keys_label_save_skip_and_go_back_as_the_mouse_does(tmp_path):
    app = app_for(tmp_path)
    assert app.counts() == Counts(labelled=0, skipped=0, to_go=20)
    first = app.current
    pressed = [app.on_key(key(k)) for k in "1332n"]
    assert pressed == ["complaint", "factual_error", "factual_error", "question", "negative"]
    assert app.form() == (["complaint", "question"], "negative", "sv")
    assert app.on_key(key("Enter")) == "save"
    assert app.counts() == Counts(1, 0, 19)
    assert "1 labelled, 0 skipped, 19 to go" in app.progress_html.value

    second = app.current
    assert app.on_key(key("ArrowRight")) == "skip" and app.counts() == Counts(1, 1, 18)
    third = app.current
    app.on_key(key("u"))
    app.on_key(key("i"))  # the language, when the post's is unknown or wrong
    assert app.on_key(key("s")) == "save" and app.counts() == Counts(2, 1, 17)

    assert app.on_key(key("ArrowLeft")) == "back" and app.current is third
    assert app.on_key(key("b")) == "back" and app.current is second
    app.on_key(key("P"))  # Shift or Caps Lock: the same key
    app.on_key(key("5"))
    app.on_key(key("K"))  # skipped again, still unlabelled
    assert app.counts() == Counts(2, 1, 17)

    records = read_labels([app.round_file])
    assert [(r.id, r.labels, r.sentiment, r.lang) for r in records] == [
        (first.post_id, ["complaint", "question"], "negative", "sv"),
        (third.post_id, [], "neutral", "it"),
    ]


def test_keys_that_mean_nothing_here_change_nothing(tmp_path):
    app = app_for(tmp_path)
    before = (app.current, app.form())
    for event in (
        key("x"),
        key("9"),
        key("Shift"),
        key("s", ctrlKey=True),  # the browser's shortcuts stay the browser's
        key("1", altKey=True),
        key("Enter", metaKey=True),
        {"type": "keyup", "key": "Enter"},
    ):
        assert app.on_key(event) is None
    assert (app.current, app.form()) == before
    assert not app.round_file.exists()


def test_with_no_post_on_screen_keys_leave_the_form_alone(tmp_path):
    app = LabellingApp(tmp_path / "round-001.jsonl")  # nothing loaded yet
    assert app.on_key(key("1")) is None and app.on_key(key("n")) is None
    assert app.form() == ([], None, None)
    assert app.on_key(key("Enter")) == "save" and "Nothing to save" in app.status


def test_the_scoring_progress_counts_posts_as_the_model_scores_them(tmp_path, baseline_model):
    items = load_items(EXAMPLE_POSTS)
    seen = []
    suggest(
        items, Predictor(baseline_model), "m", lambda done, total: seen.append((done, total)), 8
    )
    assert seen == [(8, 20), (16, 20), (20, 20)]
    assert all(item.suggestion is not None for item in items)

    app = LabellingApp(tmp_path / "round-001.jsonl", "", EXAMPLE_POSTS, baseline_model)
    shown = []
    app.scoring_html.observe(lambda change: shown.append(change["new"]), "value")
    app.name_box.value = "anna"
    app.load_button.click()
    assert shown[0].startswith("0 of 20 posts scored") and shown[-1].startswith("20 of 20")
    assert app.scoring_bar.value == app.scoring_bar.max == 20
    assert app.scoring_box.layout.display == "none"  # shown only while scoring


def test_a_queued_reply_is_shown_under_its_parent(tmp_path):
    queue = ReviewQueue(tmp_path / "queue.sqlite")
    parent = "Vi beklagar! Ring oss på 070-123 45 67 så hjälper vi dig."
    queue.add(
        [
            ReviewItem(
                post_id="fb-2",
                text="Har ringt tre gånger, ingen svarar.",
                parent_text=parent,
                lang="sv",
                reasons=["uncertain: complaint 0.48"],
                prediction={"labels": [], "intents": {}, "sentiment": "negative"},
                model="socialcare-classifier:v1",
            )
        ]
    )
    app = LabellingApp(tmp_path / "round-001.jsonl", "anna", QUEUE, "", queue_path=queue.path)
    masked = "Vi beklagar! Ring oss på [phone] så hjälper vi dig."
    assert app.current.parent_text == masked
    assert f"in reply to: {masked}" in app.post_html.value
    app.on_key(key("1"))
    assert app.on_key(key("Enter")) == "save"
    assert read_labels([app.round_file])[0].parent_text == masked


def test_socialcare_label_starts_jupyterlab_on_the_labelling_notebook(tmp_path, capsys):
    from socialcare.cli import build_parser, main
    from socialcare.cli.label import LABEL_NOTEBOOK, LabelOptions, jupyter_command
    from socialcare.core.options import parse_options

    parser, _ = build_parser()
    opts = parse_options(LabelOptions, parser.parse_args(["label", "--port", "9000"]))
    assert opts == LabelOptions(port=9000, host="127.0.0.1", browser=True, notebook=LABEL_NOTEBOOK)
    command = jupyter_command(opts)
    assert command[1:3] == ["-m", "jupyterlab"]
    assert f"--LabApp.default_url=/lab/tree/{LABEL_NOTEBOOK.name}" in command
    assert "--ServerApp.port=9000" in command and "--ServerApp.ip=127.0.0.1" in command
    assert f"--ServerApp.root_dir={LABEL_NOTEBOOK.parent}" in command
    assert "--no-browser" not in command
    opts = parse_options(LabelOptions, parser.parse_args(["label", "--no-browser"]))
    assert "--no-browser" in jupyter_command(opts)

    assert main(["label", "--notebook", str(tmp_path / "absent.ipynb")]) == 1
    assert "absent.ipynb: no such notebook" in capsys.readouterr().err
