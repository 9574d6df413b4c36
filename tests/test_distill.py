"""`socialcare distill`: a student with fewer layers, trained on its teacher's answers."""

import json

import numpy as np
import pytest
import torch

from socialcare.cli import main
from socialcare.core import paths
from socialcare.core.arrays import encode_posts
from socialcare.core.records import load_posts
from socialcare.runtime import registry
from tests.test_training import seed_subset
from training.distill import distill_loss, kept_layers, make_student, transfer_texts


@pytest.fixture(scope="module")
def teacher(tiny_backbone, tmp_path_factory):
    """A tiny fine-tuned 2-layer model, registered, and its split files."""
    root = tmp_path_factory.mktemp("distill-teacher")
    files = seed_subset(root, {"train": 120, "validation": 60, "test": 60})
    args = ["train", "--base-model", str(tiny_backbone), "--output", str(root / "model")]
    args += ["--epochs", "1", "--max-length", "32", "--no-labelled-rounds"]
    args += ["--name", "student-test", "--learning-rate", "1e-4"]
    for split, path in files.items():
        args += [f"--{split}", str(path)]
    assert main(args) == 0
    tag = str(registry.list_models("student-test")[0].tag)
    return tag, root / "model", files


def test_the_student_keeps_evenly_spaced_layers_with_the_top_one():
    assert kept_layers(12, 6) == [1, 3, 5, 7, 9, 11]
    assert kept_layers(12, 4) == [2, 5, 8, 11]
    assert kept_layers(2, 1) == [1]


def test_the_student_starts_as_the_teacher_without_its_dropped_layers(teacher, tmp_path):
    from socialcare.runtime.model import IntentSentimentModel

    _, directory, _ = teacher
    model = IntentSentimentModel.load(directory)
    student, keep = make_student(model, 1)
    assert keep == [1]
    assert len(model.encoder.encoder.layer) == 2  # the teacher itself is left whole
    teacher_top = model.encoder.encoder.layer[1].state_dict()
    for name, value in student.encoder.encoder.layer[0].state_dict().items():
        assert torch.equal(value, teacher_top[name])
    # Saved and loaded again, it is a 1-layer model computing what it did in memory.
    student.save(tmp_path)
    reloaded = IntentSentimentModel.load(tmp_path)
    assert reloaded.encoder.config.num_hidden_layers == 1
    ids, mask = torch.tensor([[2, 40, 41, 3]]), torch.ones(1, 4, dtype=torch.long)
    with torch.inference_mode():
        before, after = student.eval()(ids, mask), reloaded(ids, mask)
    assert torch.allclose(before["intent_logits"], after["intent_logits"], atol=1e-6)


def test_the_soft_loss_is_flat_where_the_student_answers_as_the_teacher():
    teacher = (torch.tensor([[2.0, -1.0, 0.5]]), torch.tensor([[1.0, 0.0, -2.0]]))
    no_labels = (
        torch.zeros(1, 3),
        torch.zeros(1, dtype=torch.long),
        torch.tensor([-100]),
        torch.ones(1),
    )

    def gradient(intent, sentiment):
        student = (intent.clone().requires_grad_(), sentiment.clone().requires_grad_())
        distill_loss(student, teacher, no_labels, temperature=2.0, hard=0.0).backward()
        return max(float(x.grad.abs().max()) for x in student)

    assert gradient(*teacher) < 1e-6
    assert gradient(teacher[0] + 1.0, teacher[1].flip(1)) > 0.05


def test_variants_are_replies_under_other_posts_and_posts_with_words_dropped():
    arrays = encode_posts(load_posts([paths.seed_split("validation")])[:50])
    texts, parents = transfer_texts(arrays, augment=2, seed=1)
    assert len(texts) == 150 and texts[:50] == arrays.texts
    replies, dropped = range(50, 100), range(100, 150)
    assert all(texts[i] == arrays.texts[i - 50] for i in replies)
    assert all(parents[i] in arrays.texts and parents[i] != texts[i] for i in replies)
    assert all(len(texts[i].split()) <= len(arrays.texts[i - 100].split()) for i in dropped)
    assert sum(texts[i] != arrays.texts[i - 100] for i in dropped) > 25


def test_distil_trains_registers_and_serves_a_student(teacher, tmp_path):
    from socialcare.runtime.resolver import load_predictor

    tag, teacher_dir, files = teacher
    output = tmp_path / "student"
    args = ["distill", "--teacher", tag, "--layers", "1", "--epochs", "2", "--augment", "1"]
    args += ["--output", str(output)]
    for split, path in files.items():
        args += [f"--{split}", str(path)]
    assert main(args) == 0

    info = json.loads((output / "socialcare.json").read_text())
    assert info["provenance"]["teacher_model"] == tag
    assert info["distilled"]["kept_layers"] == [1]
    assert info["distilled"]["transfer_posts"] == {"training": 120, "variants": 120}
    assert len(info["distilled"]["validation_score_per_epoch"]) == 2
    assert json.loads((output / "config.json").read_text())["num_hidden_layers"] == 1
    # Gated like any model: served on the runtime the gate chose.
    metrics = json.loads((output / "metrics.json").read_text())
    assert info["runtime"] == metrics["runtime_parity"]["served"]

    student = [m for m in registry.list_models("student-test") if str(m.tag) != tag]
    assert len(student) == 1 and registry.stage_of(student[0]) == "candidate"
    assert student[0].info.labels["student_of"] == tag
    predictions = load_predictor(str(student[0].tag)).predict(["Grazie, tutto risolto!"])
    assert np.isfinite(predictions.intent_prob).all()


def test_distil_refuses_a_student_as_deep_as_its_teacher(teacher, capsys):
    assert main(["distill", "--teacher", teacher[0], "--layers", "2"]) != 0
    assert "--layers must be 1 to 1" in capsys.readouterr().err
