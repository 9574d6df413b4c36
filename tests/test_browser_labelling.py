"""The labelling notebook in a real browser: `socialcare label`'s JupyterLab, driven by
Playwright in Debian's Chromium (never a downloaded browser).

A reviewer opens the notebook, runs all cells, enters a name, loads the built-in example
with a model's suggestions, labels three posts with the keyboard and one with the mouse.
The round file must hold exactly those four records, valid by the record schema. The
screenshot of the widget goes to ``artifacts/browser/label_posts.png``
(notebooks/label_posts_widget.png is one of them).

Skips where Chromium, Playwright or JupyterLab is missing (CI installs Chromium first).
"""

import os
import re
import secrets
import shutil
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from socialcare.cli.label import LABEL_NOTEBOOK, LabelOptions, jupyter_command
from socialcare.core import paths
from socialcare.core.label_store import read_labels
from socialcare.core.labels import INTENTS
from socialcare.core.records import validate
from socialcare.review.items import EXAMPLE_POSTS
from socialcare.review.labelling import KEYS

CHROMIUM = Path("/usr/bin/chromium")
# The network here is closed: without these Chromium waits on connections it never gets.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOT = paths.ARTIFACTS_DIR / "browser" / "label_posts.png"
# Kernel start, imports and the model load take most of it; 2 CPU cores.
WIDGET_TIMEOUT_MS = 90_000
STEP_TIMEOUT_MS = 20_000
# What the test labels, post by post: three by keyboard, the last by mouse.
BY_KEYBOARD = [
    ({"complaint"}, "negative"),
    ({"question", "praise"}, "positive"),
    (set(), "neutral"),
]
BY_MOUSE = ({"complaint", "question"}, "negative")
# The widget's own key map, read backwards: label or action -> its first key.
KEY_FOR = {value: key for key, value in reversed(KEYS.items())}


def _need_browser() -> None:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is absent (apt-get install chromium)")
    pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    pytest.importorskip("jupyterlab", reason="JupyterLab is not installed (the notebooks extra)")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _jupyter_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    """The environment of the server and its kernels: every Jupyter and IPython folder in
    tmp_path, so the test never reads or writes the user's settings."""
    home = tmp_path / "home"
    folders = {
        "HOME": home,
        "JUPYTER_CONFIG_DIR": home / "jupyter-config",
        "JUPYTER_DATA_DIR": home / "jupyter-data",
        "JUPYTER_RUNTIME_DIR": home / "jupyter-runtime",
        "JUPYTERLAB_SETTINGS_DIR": home / "lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": home / "lab-workspaces",
        "IPYTHONDIR": home / "ipython",
        "MPLCONFIGDIR": home / "matplotlib",
    }
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    # No "fetch Jupyter news?" toast over the notebook (and no request for it).
    notification = folders["JUPYTERLAB_SETTINGS_DIR"] / "@jupyterlab" / "apputils-extension"
    notification.mkdir(parents=True)
    (notification / "notification.jupyterlab-settings").write_text(
        '{"fetchNews": "false", "checkForUpdates": false}', encoding="utf-8"
    )
    # The user's cache of converted backbones is re-creatable, not a setting: keep using it.
    cache = {"SOCIALCARE_CACHE": str(paths.CACHE_DIR)}
    return os.environ | {k: str(v) for k, v in folders.items()} | cache | settings


def _start_jupyterlab(
    notebook: Path, env: dict[str, str], log: Path
) -> tuple[subprocess.Popen, str]:
    """`socialcare label`'s server on a free port, with a token and no news fetching;
    returns (process, base URL) once it answers."""
    port, token = _free_port(), secrets.token_hex(16)
    command = jupyter_command(LabelOptions(port=port, browser=False, notebook=notebook)) + [
        f"--IdentityProvider.token={token}",
        "--ServerApp.port_retries=0",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
    ]
    process = subprocess.Popen(command, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"JupyterLab exited with {process.returncode}:\n{log.read_text()}")
        try:
            if httpx.get(f"{base}/api/status", params={"token": token}).status_code == 200:
                return process, f"{base}/lab/tree/{notebook.name}?token={token}"
        except httpx.TransportError:
            pass
        time.sleep(0.3)
    process.terminate()
    pytest.fail(f"JupyterLab did not answer within 60 s:\n{log.read_text()}")


@pytest.fixture
def lab(tmp_path, request):
    """(page URL, round file): JupyterLab serving a copy of the labelling notebook (so
    nothing writes into the repository's), its kernel set to the built-in example."""
    _need_browser()
    baseline_model = request.getfixturevalue("baseline_model")  # trained only when needed
    notebook = tmp_path / "lab" / LABEL_NOTEBOOK.name
    notebook.parent.mkdir()
    shutil.copy(LABEL_NOTEBOOK, notebook)
    round_file = tmp_path / "labels" / "round-001.jsonl"
    env = _jupyter_env(
        tmp_path,
        SOCIALCARE_REVIEWER="",  # the reviewer types it, as in real use
        SOCIALCARE_SOURCE=str(EXAMPLE_POSTS),
        SOCIALCARE_MODEL=str(baseline_model),
        SOCIALCARE_ROUND_FILE=str(round_file),
    )
    env.pop("SOCIALCARE_DEMO", None)
    process, url = _start_jupyterlab(notebook, env, tmp_path / "jupyterlab.log")
    try:
        yield url, round_file
    finally:
        process.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


class Widget:
    """The labelling widget on the page, read and driven as a reviewer would."""

    def __init__(self, page):
        self.page = page
        self.post = page.locator(".widget-html", has_text="uncertainty").first
        self.checkboxes = page.locator(".widget-checkbox input[type=checkbox]")
        self.counts = page.locator(".widget-html", has_text=re.compile(r"Post \d+ of \d+"))

    def post_id(self) -> str:
        return self.post.locator("code").first.inner_text()

    def wait_for_counts(self, labelled: int, skipped: int) -> None:
        # Kernel round trips: each key or click is done once the counts say so.
        text = f"{labelled} labelled, {skipped} skipped"
        self.page.wait_for_function(
            "text => [...document.querySelectorAll('.widget-html')]"
            ".some(e => e.innerText.includes(text))",
            arg=text,
            timeout=STEP_TIMEOUT_MS,
        )

    def toggle(self, value: str):
        """The sentiment or language toggle button of ``value``."""
        return self.page.locator(".widget-toggle-button", has_text=re.compile(f"^{value}\\b"))

    def language_to_choose(self) -> str | None:
        """The post's language when the form needs it chosen (the example's ids say it)."""
        if "lang unknown" not in self.post.inner_text():
            return None
        return self.post_id().split("-")[1]

    def label_by_keyboard(self, labels: set[str], sentiment: str) -> None:
        self.post.hover()  # keys go to the widget while the mouse is over the post
        for n, name in enumerate(INTENTS):
            box = self.checkboxes.nth(n)
            if box.is_checked() != (name in labels):  # the model's suggestion is ticked
                self.page.keyboard.press(KEY_FOR[name])
                _expect(box).to_be_checked(checked=name in labels)
        lang = self.language_to_choose()
        for value in (sentiment, lang) if lang else (sentiment,):
            self.page.keyboard.press(KEY_FOR[value])
            _expect(self.toggle(value)).to_have_class(re.compile("mod-active"))
        self.page.keyboard.press("Enter")

    def label_by_mouse(self, labels: set[str], sentiment: str) -> None:
        for n, name in enumerate(INTENTS):
            box = self.checkboxes.nth(n)
            if box.is_checked() != (name in labels):
                box.click()
                _expect(box).to_be_checked(checked=name in labels)
        lang = self.language_to_choose()
        for value in (sentiment, lang) if lang else (sentiment,):
            self.toggle(value).click()
            _expect(self.toggle(value)).to_have_class(re.compile("mod-active"))
        self.page.locator(".widget-button", has_text="Save").click()


def _expect(locator):
    from playwright.sync_api import expect

    return expect(locator)


def test_a_reviewer_labels_posts_by_keyboard_and_mouse_in_jupyterlab(lab, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    url, round_file = lab
    labelled: dict[str, tuple[set[str], str]] = {}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        page = browser.new_page(viewport={"width": 1440, "height": 1000})
        try:
            page.goto(url)
            # The menu acts on the notebook once its kernel is up.
            page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=WIDGET_TIMEOUT_MS)
            page.get_by_role("menuitem", name="Run", exact=True).click()
            page.get_by_text(re.compile(r"^Run All( Cells)?$")).click()  # JupyterLab 4.x: either
            name_box = page.get_by_placeholder("name", exact=True)
            name_box.wait_for(timeout=WIDGET_TIMEOUT_MS)
            name_box.fill("playwright")
            page.get_by_role("button", name="Load posts").click()
            widget = Widget(page)
            widget.post.wait_for(timeout=WIDGET_TIMEOUT_MS)

            widget.post.hover()
            page.keyboard.press("ArrowRight")  # skip the first post for now
            skipped = 1
            widget.wait_for_counts(0, skipped)
            for n, (labels, sentiment) in enumerate([*BY_KEYBOARD, BY_MOUSE]):
                while "not sv/it" in widget.post.inner_text():  # another language: skip it
                    page.keyboard.press("k")
                    skipped += 1
                    widget.wait_for_counts(len(labelled), skipped)
                post_id = widget.post_id()
                if n < len(BY_KEYBOARD):
                    widget.label_by_keyboard(labels, sentiment)
                else:
                    widget.label_by_mouse(labels, sentiment)
                labelled[post_id] = (labels, sentiment)
                widget.wait_for_counts(len(labelled), skipped)
            expect(widget.counts.first).to_contain_text(f"{20 - 4 - skipped} to go")

            page.keyboard.press("b")  # back to the last post labelled: the screenshot
            expect(widget.post).to_contain_text("You labelled this post")
            assert widget.post_id() == post_id
            page.mouse.move(0, 0)  # no hover outline in the picture
            shot = tmp_path / "label_posts.png"
            page.locator(".jupyter-widgets", has=widget.post).first.screenshot(path=shot)
        except Exception:
            page.screenshot(path=tmp_path / "failure.png", full_page=True)
            raise
        finally:
            browser.close()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(shot, SCREENSHOT)

    records = read_labels([round_file])  # the record schema, line by line
    assert {r.id: (set(r.labels), r.sentiment) for r in records} == labelled
    assert len(records) == 4 and {r.annotator for r in records} == {"playwright"}
    assert validate([round_file]) == (4, [])  # what `socialcare validate` checks
