import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

# Tests register models in a throw-away BentoML store, never in the user's (set before
# anything imports bentoml, which reads it once).
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="socialcare-test-bentoml-")
# Removed when the run ends: each run registers tens of MB of models there.
atexit.register(shutil.rmtree, os.environ["BENTOML_HOME"], ignore_errors=True)


@pytest.fixture
def write_jsonl(tmp_path: Path):
    """Write records (dicts, or raw strings/bytes for broken lines) to a JSONL file in tmp_path."""

    def write(name: str, rows: list) -> Path:
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            for row in rows:
                if isinstance(row, dict):
                    row = json.dumps(row, ensure_ascii=False)
                handle.write(row if isinstance(row, bytes) else row.encode("utf-8"))
                handle.write(b"\n")
        return path

    return write


def post(id: str = "sv-1", text: str = "När får jag besked om min skada?", **fields) -> dict:
    """A valid record; keyword arguments override or add fields (None removes one)."""
    record = {"id": id, "text": text, "lang": "sv", "labels": ["question"], "sentiment": "neutral"}
    record.update(fields)
    return {k: v for k, v in record.items() if v is not None}


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory) -> Path:
    """A 2-layer, 32-wide BERT with a WordPiece vocabulary learnt from the seed data.

    Stands in for the real backbone where a test checks the pipeline, not the scores.
    """
    from tokenizers import BertWordPieceTokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import BertConfig, BertModel, BertTokenizerFast

    from socialcare.core import paths
    from socialcare.core.records import load_posts

    directory = tmp_path_factory.mktemp("tiny-backbone")
    texts = [post.text for post in load_posts([paths.seed_split("train")])]
    wordpiece = BertWordPieceTokenizer(lowercase=True)
    wordpiece.train_from_iterator(texts, vocab_size=2000, min_frequency=2)
    # The trained tokenizer itself (a vocab_file alone loads as special tokens only in
    # transformers 5), with BERT's single and pair templates.
    tokenizer = wordpiece._tokenizer
    cls, sep = tokenizer.token_to_id("[CLS]"), tokenizer.token_to_id("[SEP]")
    tokenizer.post_processor = TemplateProcessing(
        single="[CLS] $A [SEP]",
        pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)],
    )
    BertTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    ).save_pretrained(directory)
    config = BertConfig(
        vocab_size=wordpiece.get_vocab_size(),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
    )
    BertModel(config).save_pretrained(directory)
    return directory


@pytest.fixture(scope="session")
def registered_baseline(tmp_path_factory) -> tuple[str, Path]:
    """(tag, directory) of a baseline trained on the seed data and registered (seconds).

    With a threshold table per language (not the default), so that tests can see which
    language's thresholds a post was decided with."""
    from socialcare.cli import main
    from socialcare.runtime.registry import list_models

    directory = tmp_path_factory.mktemp("baseline") / "model"
    args = ["train", "--kind", "baseline", "--per-language-thresholds"]
    assert main([*args, "--output", str(directory)]) == 0
    return str(list_models()[0].tag), directory


@pytest.fixture(scope="session")
def baseline_model(registered_baseline) -> Path:
    """A baseline model directory trained on the seed data."""
    return registered_baseline[1]


@pytest.fixture(scope="session")
def service_settings(registered_baseline, tmp_path_factory):
    """The service's settings for the registered baseline, with a temp review queue."""
    from serving.settings import ServiceSettings

    queue = tmp_path_factory.mktemp("var") / "review.sqlite"
    return ServiceSettings(model=registered_baseline[0], review_queue=queue)


@pytest.fixture(scope="session")
def service_client(service_settings):
    """The prediction service in-process (one per test run: BentoML registers its
    Prometheus metrics once per process)."""
    from starlette.testclient import TestClient

    from serving.service import build_service

    with TestClient(build_service(service_settings).to_asgi()) as client:
        yield client


@pytest.fixture
def run_notebook(tmp_path: Path):
    """Execute a notebook headless (as `jupyter nbconvert --execute` does) and return it.

    ``env`` entries are set for the kernel; a failing cell raises with its traceback.
    """

    def run(path: Path, env: dict[str, str] | None = None, timeout: int = 600):
        import nbformat
        from nbclient import NotebookClient

        notebook = nbformat.read(path, as_version=4)
        saved = dict(os.environ)
        os.environ.update(env or {})  # the kernel process inherits this environment
        try:
            NotebookClient(
                notebook,
                timeout=timeout,
                kernel_name="python3",
                resources={"metadata": {"path": str(path.parent)}},
            ).execute()
        finally:
            os.environ.clear()
            os.environ.update(saved)
        nbformat.write(notebook, tmp_path / path.name)
        return notebook

    return run


@pytest.fixture
def start_service(tmp_path: Path):
    """Start `socialcare serve` (model tag, extra options) and wait until it is ready;
    every service started is stopped at the end of the test."""
    from serving.child import ServiceProcess

    started: list[ServiceProcess] = []

    def start(model: str, *options: str) -> ServiceProcess:
        directory = tmp_path / f"service-{len(started)}"
        directory.mkdir()
        service = ServiceProcess(model, directory, *options)
        started.append(service)
        service.wait_until_ready()
        return service

    yield start
    for service in started:
        service.stop()
