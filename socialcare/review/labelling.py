"""The reviewers' labelling widget (notebooks/label_posts.ipynb), testable without a browser.

A reviewer enters their name, picks a source (the service's review queue, or a JSONL/CSV
file of unlabelled posts) and labels one post at a time: intent checkboxes, a sentiment
choice, the language when it is not known, then Save, Skip or Back. The model's
suggestions are pre-filled and shown with their probabilities (socialcare.review.items).
Every Save appends a new record to the round file through socialcare.core.label_store;
going back to a saved post and saving again appends a correction, never an edit.

The buttons call ``save``, ``skip``, ``back`` and ``load``; tests and the notebook's
headless check call the same methods (or ``button.click()``). With the mouse over the
post, keys do what the mouse does (``KEYS``, shown in the widget): ipyevents sends each
key press to ``on_key``, which tests call directly.
"""

import html
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import ipywidgets as widgets
from ipyevents import Event

from socialcare.core import paths
from socialcare.core.errors import one_line
from socialcare.core.label_store import append_label, latest_labels, make_label, round_files
from socialcare.core.labels import INTENTS, LANGS, SENTIMENTS
from socialcare.core.records import DataError
from socialcare.core.review_queue import QueueReader, ReviewQueue
from socialcare.core.schema import Post
from socialcare.core.text import duplicate_key
from socialcare.review.guide import guide_html
from socialcare.review.items import (
    EXAMPLE_POSTS,
    EXAMPLES_DIR,
    QUEUE,
    Item,
    load_items,
    load_model,
    review_order,
    suggest,
)

# The keyboard: key -> what it does, an intent or sentiment or language to set, or an
# action. Intents take the digits in the label set's order, so the keys follow the guide.
INTENT_KEYS = {str(n): name for n, name in enumerate(INTENTS, start=1)}
SENTIMENT_KEYS = {"n": "negative", "u": "neutral", "p": "positive"}
LANG_KEYS = {"v": "sv", "i": "it"}
ACTION_KEYS = {
    "Enter": "save",
    "s": "save",
    "k": "skip",
    "ArrowRight": "skip",
    "b": "back",
    "ArrowLeft": "back",
}
KEYS = INTENT_KEYS | SENTIMENT_KEYS | LANG_KEYS | ACTION_KEYS
_KEY_NAMES = {"ArrowRight": "→", "ArrowLeft": "←"}
# JupyterLab leaves <kbd> unstyled: a key cap, so the keys stand out from the words.
_KBD_STYLE = "border:1px solid #bbb;border-radius:3px;padding:0 4px;background:#f6f6f6"


def keys_html() -> str:
    """The key map as the widget shows it, under the buttons."""

    def keys_for(value: str) -> str:
        names = [_KEY_NAMES.get(key, key) for key, v in KEYS.items() if v == value]
        return " or ".join(f"<kbd style='{_KBD_STYLE}'>{html.escape(name)}</kbd>" for name in names)

    groups = [
        ("tick/untick", INTENTS),
        ("sentiment", SENTIMENTS),
        ("language", LANGS),
        ("", ("save", "skip", "back")),
    ]
    parts = [
        (f"{title}: " if title else "")
        + ", ".join(f"{keys_for(value)} {value}" for value in values)
        for title, values in groups
    ]
    return (
        "<div style='color:#555;font-size:12px'><b>Keys</b> (mouse over the post): "
        + " &middot; ".join(parts)
        + "</div>"
    )


class Counts(NamedTuple):
    """Where the reviewer is among the loaded posts."""

    labelled: int
    skipped: int
    to_go: int


class LabellingApp:
    """The labelling widget: ``display(app.widget)`` in a notebook.

    ``round_file`` receives every saved label (append-only). ``annotator`` and ``source``
    pre-fill the name and source boxes; when both are given the posts load at once.
    ``model`` is a model directory, a registered tag, ``"latest"`` or ``""`` (see
    ``load_model``).
    """

    def __init__(
        self,
        round_file: Path,
        annotator: str = "",
        source: str | Path | None = None,
        model: str | Path | None = None,
        queue_path: Path = paths.REVIEW_QUEUE,
        limit: int | None = None,
    ):
        self.round_file = Path(round_file)
        self.queue_path = Path(queue_path)
        self.limit = limit
        self.predictor, self.model_name, self.model_note = load_model(model)
        self.items: list[Item] = []
        # This session's way through the review queue: each queued post is read once, and
        # loading the queue again adds what was queued since (socialcare.core.review_queue).
        self.queue_reader: QueueReader | None = None  # opened on the first load from the queue
        self.order: list[int] = []
        self.position = 0
        self.saved: dict[str, Post] = {}  # post id -> this reviewer's latest label
        self.skipped: set[str] = set()
        self.status = ""
        self._texts: dict[str, str] = {}  # post id -> text, over the round files
        self._ids_by_key: dict[str, str] = {}  # duplicate key -> post id, likewise
        self._build(annotator, "" if source is None else str(source))
        if annotator.strip() and source is not None:
            self.load()
        else:
            self._show_done("Enter your name, pick a source and press <b>Load posts</b>.")

    # -- the widget ---------------------------------------------------------------------

    def _build(self, annotator: str, source: str) -> None:
        wide = widgets.Layout(width="95%")
        self.name_box = widgets.Text(value=annotator, description="Reviewer", placeholder="name")
        self.source_box = widgets.Combobox(
            value=source,
            options=[QUEUE, str(EXAMPLE_POSTS), str(EXAMPLES_DIR / "posts.csv")],
            ensure_option=False,
            description="Source",
            placeholder="'queue' or a .jsonl/.csv file",
            layout=widgets.Layout(width="60%"),
        )
        self.load_button = widgets.Button(description="Load posts", icon="download")
        self.model_html = widgets.HTML(f"<i>{html.escape(self.model_note)}</i>")
        # Shown only while the model scores the loaded posts (seconds to minutes).
        self.scoring_bar = widgets.IntProgress(value=0, min=0, max=1, description="Scoring")
        self.scoring_html = widgets.HTML()
        self.scoring_box = widgets.HBox(
            [self.scoring_bar, self.scoring_html], layout=widgets.Layout(display="none")
        )
        self.progress_html = widgets.HTML()
        self.post_html = widgets.HTML(layout=wide)
        self.intent_boxes = {
            name: widgets.Checkbox(description=name, indent=False, layout=wide) for name in INTENTS
        }
        self.sentiment_buttons = widgets.ToggleButtons(
            options=list(SENTIMENTS), value=None, description="Sentiment"
        )
        self.lang_buttons = widgets.ToggleButtons(
            options=list(LANGS), value=None, description="Language"
        )
        self.back_button = widgets.Button(description="Back", icon="arrow-left", tooltip="b or ←")
        self.skip_button = widgets.Button(description="Skip", icon="forward", tooltip="k or →")
        self.save_button = widgets.Button(
            description="Save", icon="check", button_style="primary", tooltip="Enter or s"
        )
        self.status_html = widgets.HTML()

        self.load_button.on_click(lambda _: self.load())
        self.back_button.on_click(lambda _: self.back())
        self.skip_button.on_click(lambda _: self.skip())
        self.save_button.on_click(lambda _: self.save())

        form = widgets.VBox(
            [
                self.progress_html,
                self.post_html,
                widgets.HTML("<b>Intents</b> (model probability; ticked = suggested)"),
                *self.intent_boxes.values(),
                self.sentiment_buttons,
                self.lang_buttons,
                widgets.HBox([self.back_button, self.skip_button, self.save_button]),
                self.status_html,
                widgets.HTML(keys_html()),
            ],
            layout=widgets.Layout(width="62%"),
        )
        guide = widgets.VBox(
            [widgets.HTML(guide_html())],
            layout=widgets.Layout(width="36%", border="1px solid #ddd", padding="6px"),
        )
        labelling_area = widgets.HBox([form, guide])
        # Keys are caught over the labelling area only, never while typing a name or source.
        self.keyboard = Event(
            source=labelling_area, watched_events=["keydown"], ignore_modifier_key_events=True
        )
        self.keyboard.on_dom_event(self.on_key)
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.name_box, self.source_box, self.load_button]),
                self.model_html,
                self.scoring_box,
                labelling_area,
            ]
        )

    # -- loading ------------------------------------------------------------------------

    def load(self) -> int:
        """Load posts from the source box, add suggestions, order them; show the first one
        this reviewer has not labelled yet. Returns how many posts were loaded: from the
        queue, the ones new to this session (those read before stay in the list)."""
        source = self.source_box.value.strip()
        from_queue = source == QUEUE
        try:
            if from_queue and self.queue_reader is None:
                self.queue_reader = QueueReader(ReviewQueue(self.queue_path))
            new = load_items(source, self.limit, self.queue_path, self.queue_reader)
            if self.predictor is not None:
                self._show_scoring(0, len(new))
                suggest(new, self.predictor, self.model_name, progress=self._show_scoring)
            self._read_round_labels()
        except (DataError, OSError, ValueError) as err:
            self._status(f"Could not load {source!r}: {err}", error=True)
            return 0
        finally:
            self.scoring_box.layout.display = "none"
        kept = [item for item in self.items if item.queue_id is not None] if from_queue else []
        self.items = kept + new
        self.order = review_order(self.items)
        self.skipped = set()
        self.position = -1
        self._advance()
        done = sum(self.previous(item) is not None for item in new)
        self._status(
            f"Loaded {len(new)} {'new ' if kept else ''}posts from {source}"
            + (f"; {done} already labelled by you" if done else "")
            + "."
        )
        return len(new)

    def _show_scoring(self, scored: int, total: int) -> None:
        self.scoring_box.layout.display = "flex"
        self.scoring_bar.max = max(total, 1)
        self.scoring_bar.value = scored
        self.scoring_html.value = f"{scored} of {total} posts scored by {self.model_name}"

    def _read_round_labels(self) -> None:
        """Labels already in the round files beside ``round_file``: this reviewer's latest
        per post (to resume and to pre-fill), and every post's text (to refuse what
        ``socialcare validate`` would: a near-copy of another post, an id reused)."""
        files = set(round_files(self.round_file.parent))
        if self.round_file.exists():
            files.add(self.round_file)
        labels = latest_labels(sorted(files)) if files else []
        self.saved = {p.id: p for p in labels if self.annotator and p.annotator == self.annotator}
        self._texts = {p.id: p.text for p in labels}
        self._ids_by_key = {duplicate_key(p.text): p.id for p in labels}

    def _conflict(self, item: Item) -> str | None:
        """Why labelling this post would break the round's validation, or None."""
        text = self._texts.get(item.post_id)
        if text is not None and text != item.text:
            return (
                f"id: {item.post_id!r} already names another text in the labelled rounds; "
                "this post needs its own id in the source"
            )
        other = self._ids_by_key.get(duplicate_key(item.text))
        if other is not None and other != item.post_id:
            return f"text: a copy of post {other!r}, already labelled; skip this one"
        return None

    # -- navigation -----------------------------------------------------------------------

    @property
    def annotator(self) -> str:
        return self.name_box.value.strip()

    def previous(self, item: Item) -> Post | None:
        """This reviewer's latest saved label of this post (same id and text), if any."""
        record = self.saved.get(item.post_id)
        return record if record is not None and record.text == item.text else None

    @property
    def current(self) -> Item | None:
        """The post on screen, or None when all are done (or none are loaded)."""
        if 0 <= self.position < len(self.order):
            return self.items[self.order[self.position]]
        return None

    def select(self, position: int) -> Item | None:
        """Show the post at ``position`` in review order, its form pre-filled with this
        reviewer's saved label, else the model's suggestion."""
        if not 0 <= position < len(self.order):
            self.position = len(self.order)
            self._show_done(f"All {len(self.order)} posts done. {self.summary()}.")
            return None
        self.position = position
        item = self.items[self.order[position]]
        self._render(item)
        return item

    def back(self) -> Item | None:
        """Show the previous post in review order (saved, skipped or not)."""
        if self.position <= 0:
            self._status("This is the first post.")
            return self.current
        self._status("")
        return self.select(min(self.position, len(self.order)) - 1)

    def skip(self) -> Item | None:
        """Leave the post unlabelled for now and show the next one."""
        item = self.current
        if item is not None:
            self.skipped.add(item.post_id)
            self._status(f"Skipped {item.post_id}.")
        return self._advance()

    def _advance(self) -> Item | None:
        # Forward to the next post this reviewer has not saved (resuming skips done ones).
        position = self.position + 1
        while position < len(self.order) and self.previous(self.items[self.order[position]]):
            position += 1
        return self.select(position)

    # -- the form -------------------------------------------------------------------------

    def fill(
        self,
        labels: Sequence[str] | None = None,
        sentiment: str | None = None,
        lang: str | None = None,
    ) -> None:
        """Set the form as a reviewer's clicks would (None leaves a part as it is)."""
        if labels is not None:
            unknown = set(labels) - set(INTENTS)
            if unknown:
                raise ValueError(f"unknown intent(s) {sorted(unknown)}; use {', '.join(INTENTS)}")
            for name, box in self.intent_boxes.items():
                box.value = name in labels
        if sentiment is not None:
            self.sentiment_buttons.value = sentiment
        if lang is not None:
            self.lang_buttons.value = lang

    def form(self) -> tuple[list[str], str | None, str | None]:
        """(ticked intents, sentiment, language) as the form shows them now."""
        labels = [name for name, box in self.intent_boxes.items() if box.value]
        return labels, self.sentiment_buttons.value, self.lang_buttons.value

    def save(self) -> Post | None:
        """Append the form as a new label record, then show the next post.

        Returns the record, or None (with the reason in the status line) when nothing was
        saved: no post, no reviewer name, no sentiment or no language chosen.
        """
        item = self.current
        if item is None:
            self._status("Nothing to save: no post on screen.", error=True)
            return None
        conflict = self._conflict(item)
        if conflict is not None:
            self._status(conflict, error=True)
            return None
        labels, sentiment, lang = self.form()
        if sentiment is None:
            self._status("sentiment: choose one (the guide asks for exactly one).", error=True)
            return None
        try:
            record = make_label(
                item.post_id, item.text, lang, labels, sentiment, self.annotator, item.source,
                parent_text=item.parent_text,
            )  # fmt: skip
        except ValueError as err:
            self._status(one_line(err), error=True)
            return None
        correction = self.previous(item) is not None
        append_label(self.round_file, record)  # returns once the line is on disk
        self.saved[item.post_id] = record
        self._texts[item.post_id] = item.text
        self._ids_by_key[duplicate_key(item.text)] = item.post_id
        self.skipped.discard(item.post_id)
        if item.queue_id is not None:
            # After the label is durable: a crash in between shows the post again, and a
            # second label of it is a harmless correction.
            ReviewQueue(self.queue_path).mark_done([item.queue_id])
        self._advance()
        self._status(
            f"{'Corrected' if correction else 'Saved'} {item.post_id} to {self.round_file}."
        )
        return record

    def counts(self) -> Counts:
        """Loaded posts this reviewer has labelled, skipped (a save un-skips), and the rest."""
        labelled = sum(self.previous(item) is not None for item in self.items)
        skipped = sum(item.post_id in self.skipped for item in self.items)
        return Counts(labelled, skipped, len(self.items) - labelled - skipped)

    def summary(self) -> str:
        """Progress in words: labelled, skipped, to go."""
        labelled, skipped, to_go = self.counts()
        return f"{labelled} labelled, {skipped} skipped, {to_go} to go"

    # -- the keyboard ---------------------------------------------------------------------

    def on_key(self, event: dict) -> str | None:
        """Act on a key press as the mouse would (``KEYS``); ``event`` is what ipyevents
        sends: ``key`` (the browser's KeyboardEvent.key) and the modifier flags.

        Returns what the key did (an intent toggled, a sentiment or language chosen,
        ``save``, ``skip``, ``back``), or None when it means nothing here.
        """
        if event.get("type", "keydown") != "keydown":
            return None
        if any(event.get(flag) for flag in ("ctrlKey", "altKey", "metaKey")):
            return None  # the browser's and JupyterLab's shortcuts, not ours
        key = event.get("key", "")
        # Letters work with Shift or Caps Lock too; named keys (Enter, arrows) as they are.
        value = KEYS.get(key if len(key) > 1 else key.lower())
        if value is None:
            return None
        actions = {"save": self.save, "skip": self.skip, "back": self.back}
        if value in actions:
            actions[value]()
        elif self.current is None:
            return None  # no post on screen: the form is disabled for the mouse too
        elif value in INTENT_KEYS.values():
            box = self.intent_boxes[value]
            box.value = not box.value
        elif value in SENTIMENT_KEYS.values():
            self.fill(sentiment=value)
        else:
            self.fill(lang=value)
        return value

    # -- rendering ------------------------------------------------------------------------

    def _render(self, item: Item) -> None:
        suggestion = item.suggestion
        for name, box in self.intent_boxes.items():
            box.description = (
                f"{name}  {suggestion.intents[name]:.2f}" if suggestion is not None else name
            )
        options = [
            (f"{name} {suggestion.sentiment[name]:.2f}" if suggestion else name, name)
            for name in SENTIMENTS
        ]
        self.sentiment_buttons.options = options  # resets the value: set it below
        previous = self.previous(item)
        if previous is not None:  # what this reviewer saved last time comes first
            self.fill(previous.labels or [], lang=previous.lang)
            self.sentiment_buttons.value = previous.sentiment
        else:
            self.fill(suggestion.labels if suggestion is not None else [])
            self.sentiment_buttons.value = suggestion.sentiment_label if suggestion else None
            self.lang_buttons.value = item.lang if item.lang in LANGS else None
        self._set_enabled(True)
        self.progress_html.value = (
            f"<b>Post {self.position + 1} of {len(self.order)}</b> &middot; {self.summary()}"
        )
        self.post_html.value = self._post_html(item, previous)

    def _post_html(self, item: Item, previous: Post | None) -> str:
        meta = [f"id <code>{html.escape(item.post_id)}</code>", html.escape(item.source)]
        meta.append(f"lang {html.escape(item.lang)}" if item.lang else "lang unknown: choose it")
        if item.lang and item.lang not in LANGS:
            meta.append("<b>not sv/it: skip it unless it is really sv or it</b>")
        if item.uncertainty is not None:
            meta.append(f"uncertainty {item.uncertainty:.2f} ({item.uncertain_about})")
        if item.suggestion is not None and item.suggestion.model:
            meta.append(f"suggested by {html.escape(item.suggestion.model)}")
        # A reply is labelled as it means under its parent: show the parent above it.
        lines = [] if item.parent_text is None else [
            "<div style='color:#555;font-size:13px;white-space:pre-wrap'>in reply to: "
            f"{html.escape(item.parent_text)}</div>"
        ]  # fmt: skip
        lines += [
            "<div style='font-size:15px;white-space:pre-wrap;border-left:4px solid #4a90d9;"
            f"padding:6px 10px;margin:4px 0'>{html.escape(item.text)}</div>",
            f"<div style='color:#666;font-size:12px'>{' &middot; '.join(meta)}</div>",
        ]
        if item.reasons:
            reasons = "; ".join(map(html.escape, item.reasons))
            lines.append(f"<div style='color:#a60;font-size:12px'>queued: {reasons}</div>")
        conflict = self._conflict(item)
        if conflict is not None:
            lines.append(f"<div style='color:#c00;font-size:12px'>{html.escape(conflict)}</div>")
        if previous is not None:
            lines.append(
                "<div style='color:#2a7;font-size:12px'>You labelled this post at "
                f"{previous.labelled_at:%Y-%m-%d %H:%M} UTC; saving again adds a correction."
                "</div>"
            )
        return "".join(lines)

    def _show_done(self, message: str) -> None:
        self.progress_html.value = f"<b>{self.summary()}</b>" if self.items else ""
        self.post_html.value = f"<div style='padding:6px 0'>{message}</div>"
        for box in self.intent_boxes.values():
            box.value = False
        self.sentiment_buttons.value = None
        self.lang_buttons.value = None
        self._set_enabled(False)
        self.back_button.disabled = not self.order

    def _set_enabled(self, enabled: bool) -> None:
        form = [*self.intent_boxes.values(), self.sentiment_buttons, self.lang_buttons]
        for control in [*form, self.skip_button, self.save_button, self.back_button]:
            control.disabled = not enabled

    def _status(self, message: str, error: bool = False) -> None:
        """Show a plain-text message under the buttons (kept in ``status`` for tests, logs)."""
        self.status = message
        colour = "#c00" if error else "#333"
        self.status_html.value = f"<span style='color:{colour}'>{html.escape(message)}</span>"
