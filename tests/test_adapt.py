"""`socialcare adapt`: a trained model updated on reviewers' rounds, with its provenance."""

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file

from socialcare.cli import main
from socialcare.core import paths
from socialcare.core.label_store import append_label, make_label, round_path
from socialcare.core.records import load_posts
from socialcare.runtime import registry
from tests.test_training import seed_subset


@pytest.fixture(scope="module")
def parent(tiny_backbone, tmp_path_factory):
    """A tiny fine-tuned model, registered and in production."""
    root = tmp_path_factory.mktemp("adapt-parent")
    files = seed_subset(root, {"train": 120, "validation": 60, "test": 60})
    args = ["train", "--base-model", str(tiny_backbone), "--output", str(root / "model")]
    args += ["--epochs", "1", "--max-length", "32", "--no-labelled-rounds", "--name", "adapt-test"]
    args += ["--learning-rate", "1e-4"]
    for split, path in files.items():
        args += [f"--{split}", str(path)]
    assert main(args) == 0
    tag = str(registry.list_models("adapt-test")[0].tag)
    registry.mark_production(tag)
    return tag, root / "model"


def test_adapt_continues_the_model_on_the_rounds_and_records_where_it_came_from(parent, tmp_path):
    tag, parent_dir = parent
    rounds = tmp_path / "labelled"
    posts = load_posts([paths.seed_split("train")])[500:540]
    for post in posts:
        label = make_label(post.id, post.text, post.lang, post.labels or [], post.sentiment,
                           "anna", "review-queue")  # fmt: skip
        append_label(round_path(1, rounds), label)
    output = tmp_path / "adapted"
    args = ["adapt", "--model", tag, "--labelled-dir", str(rounds), "--output", str(output)]
    assert main([*args, "--epochs", "1", "--replay", "60", "--trainable-layers", "1"]) == 0

    info = json.loads((output / "socialcare.json").read_text())
    provenance = info["provenance"]
    assert provenance["parent_model"] == tag
    assert str(round_path(1, rounds)) in provenance["file_sha256"]
    assert provenance["reviewed_held_out"]  # a share of the 40 reviewed posts, for the gate
    assert info["max_length"] == 32  # the parent's text handling
    # The lower layer stayed as the parent had it; the top layer and the heads learnt.
    before, after = (
        load_file(parent_dir / "model.safetensors"),
        load_file(output / "model.safetensors"),
    )
    low = [k for k in after if "encoder.layer.0." in k]
    top = [k for k in after if "encoder.layer.1." in k]
    assert low and all((after[k] == before[k]).all() for k in low)
    assert any(not (after[k] == before[k]).all() for k in top)
    # Registered as a candidate of the parent's name, production unchanged until promoted.
    adapted = [m for m in registry.list_models("adapt-test") if str(m.tag) != tag]
    assert len(adapted) == 1 and registry.stage_of(adapted[0]) == "candidate"
    assert str(registry.production_model("adapt-test").tag) == tag


def test_adapt_refuses_without_rounds(parent, tmp_path, capsys):
    assert main(["adapt", "--model", parent[0], "--labelled-dir", str(tmp_path)]) != 0
    assert "no reviewers' round files" in capsys.readouterr().err


def test_cached_lower_layers_then_the_top_give_the_models_own_logits(parent):
    """Adapting runs the frozen layers once and the top from their states: together
    they must compute what the whole model computes, whatever the split point."""
    from socialcare.core.arrays import encode_posts
    from socialcare.runtime.model import IntentSentimentModel
    from socialcare.runtime.predictor import Predictor
    from socialcare.runtime.tokens import TokenBatcher
    from training.adapt import FrozenStates, frozen_logits

    _, directory = parent
    posts = load_posts([paths.seed_split("validation")])[:24]
    arrays = encode_posts(posts)
    predictor = Predictor(directory, runtime="torch")
    expected = predictor.logits(arrays.texts, arrays.parents)
    model = IntentSentimentModel.load(directory)
    tokens = TokenBatcher.for_model(directory, predictor.info)
    for frozen in (0, 1, 2):  # the tiny backbone has 2 layers
        states = FrozenStates(model, tokens, arrays, frozen)
        intent, sentiment = frozen_logits(model, frozen, states)
        assert abs(intent - expected[0]).max() < 1e-4, frozen
        assert abs(sentiment - expected[1]).max() < 1e-4, frozen


def review_round(folder, count: int = 40):
    posts = load_posts([paths.seed_split("train")])[500 : 500 + count]
    for post in posts:
        label = make_label(post.id, post.text, post.lang, post.labels or [], post.sentiment,
                           "anna", "review-queue")  # fmt: skip
        append_label(round_path(1, folder), label)
    return folder


def test_adapt_chooses_the_reviewed_weight_on_the_held_out_reviewed_posts(parent, tmp_path):
    tag, parent_dir = parent
    rounds = review_round(tmp_path / "labelled")
    output = tmp_path / "adapted"
    args = ["adapt", "--model", str(parent_dir), "--labelled-dir", str(rounds)]
    assert main([*args, "--output", str(output), "--replay", "60", "--no-register"]) == 0
    adapted = json.loads((output / "socialcare.json").read_text())["adapted"]
    tried = adapted["reviewed_weight"]["tried"]
    assert [t["reviewed_weight"] for t in tried] == [1.0, 2.0, 4.0, 8.0]
    best = max(t["reviewed_score"] for t in tried)
    first_best = next(t["reviewed_weight"] for t in tried if t["reviewed_score"] == best)
    assert adapted["reviewed_weight"]["chosen"] == first_best
    # Heads only by default: the whole encoder is the parent's, the heads learnt.
    before = load_file(parent_dir / "model.safetensors")
    after = load_file(output / "model.safetensors")
    assert all((after[k] == before[k]).all() for k in after)
    heads = load_file(parent_dir / "heads.safetensors"), load_file(output / "heads.safetensors")
    assert any(not (heads[1][k] == heads[0][k]).all() for k in heads[0])

    # A weight given is the only one trained.
    output = tmp_path / "given"
    assert main([*args, "--output", str(output), "--replay", "60", "--no-register",
                 "--reviewed-weight", "3"]) == 0  # fmt: skip
    adapted = json.loads((output / "socialcare.json").read_text())["adapted"]
    assert adapted["reviewed_weight"] == {
        "chosen": 3.0,
        "tried": [{"reviewed_weight": 3.0, "reviewed_score": None}],
    }


def test_the_store_entry_holds_only_what_serves_and_the_weights_are_kept_apart(parent):
    from socialcare.runtime.predictor import ONNX_FILES

    tag, directory = parent
    served = json.loads((directory / "socialcare.json").read_text())["runtime"]
    assert served in ONNX_FILES  # else the torch weights are what it serves
    entry = Path(registry.get_model(tag).path)
    stored = {p.name for p in entry.iterdir()}
    assert set(ONNX_FILES.values()) <= {p.name for p in directory.iterdir()}  # training's own
    for runtime, name in ONNX_FILES.items():
        assert (name in stored) == (runtime == served), name
    assert "tokenizer.json" in stored
    assert not {"model.safetensors", "heads.safetensors"} & stored
    # The weights adapting continues from: an entry of the same version, found from the
    # served one, holding the training's own files.
    weights = registry.torch_weights_dir(entry)
    assert weights.parent.name == tag.split(":")[0] + registry.WEIGHTS_SUFFIX
    assert weights.name == tag.split(":")[1]
    for name in registry.TORCH_FILES:
        assert (weights / name).read_bytes() == (directory / name).read_bytes(), name


def test_a_stored_model_whose_weights_entry_is_gone_says_so(parent, tmp_path):
    import shutil

    tag, _ = parent
    copy = tmp_path / "entry"
    shutil.copytree(registry.get_model(tag).path, copy)
    (copy / "model.yaml").write_text("name: adapt-test\nversion: nosuchversion\n")
    with pytest.raises(FileNotFoundError, match="adapt-test-weights:nosuchversion"):
        registry.torch_weights_dir(copy)
