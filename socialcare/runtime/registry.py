"""The model registry: trained model directories kept in the BentoML model store.

Training registers, `socialcare promote` moves a model between stages, and everything
that loads a model asks `socialcare.runtime.resolver` which one. Each entry carries its
provenance in BentoML labels and metadata (fixed when it is registered). Its stage lives
in a small file of ours inside the model's directory (``stage.json``), since BentoML has
no public call to change a stored model: ``candidate`` when trained, ``production`` once
promoted (one model at a time), ``archived`` when a later model replaced it; with the
last promotion decision about it.

A model's entry holds what it is served with, and nothing else, since a Bento copies it
whole. When it is served on an ONNX graph, its torch weights (which `socialcare adapt`,
`distill` and `python -m training.export` continue from) go to an entry of their own,
``<name>-weights:<same version>``: `torch_weights_dir` finds them.
"""

import json
import os
import shutil
from pathlib import Path

MODEL_NAME = "socialcare-classifier"
STAGE_FILE = "stage.json"
CANDIDATE, PRODUCTION, ARCHIVED = "candidate", "production", "archived"
STAGES = (CANDIDATE, PRODUCTION, ARCHIVED)
WEIGHTS_SUFFIX = "-weights"
# What IntentSentimentModel.load reads (config.json stays in the served entry as well).
TORCH_FILES = ("config.json", "model.safetensors", "heads.safetensors")


def register(
    model_dir: Path, labels: dict[str, str], metadata: dict, name: str = MODEL_NAME
) -> str:
    """Copy a trained model directory into the store as a candidate; return ``name:version``.

    The entry gets only what the model is served with (`unserved_files` stay behind: an
    ONNX copy of the encoder is about 400 MB). Torch weights not served go to the
    ``<name>-weights`` entry of the same version. The training's own directory keeps every
    file.
    """
    import bentoml

    model_dir = Path(model_dir).resolve()
    skipped = unserved_files(model_dir)
    with bentoml.models.create(name, labels=labels, metadata=_storable(metadata)) as model:
        _copy(model_dir, Path(model.path), skipped)
        _write_stage(Path(model.path), {"stage": CANDIDATE})
    weights = {model_dir / file for file in TORCH_FILES}
    if weights & skipped:
        version = bentoml.Tag(name + WEIGHTS_SUFFIX, model.tag.version)
        with bentoml.models.create(version, labels={"weights_of": str(model.tag)}) as entry:
            for path in sorted(weights):
                shutil.copy2(path, Path(entry.path) / path.name)
    return str(model.tag)


def _copy(source: Path, target: Path, skipped: set[Path]) -> None:
    shutil.copytree(
        source,
        target,
        dirs_exist_ok=True,
        ignore=lambda folder, names: [
            name for name in names if Path(folder, name).resolve() in skipped
        ],
    )


def unserved_files(model_dir: Path) -> set[Path]:
    """The files of a fine-tuned model that its recorded runtime does not read: the other
    exported graphs, and the torch weights when an ONNX graph serves it. A model without a
    recorded runtime keeps everything."""
    from socialcare.runtime.predictor import INFO_FILE, ONNX_FILES, TORCH

    info = json.loads((Path(model_dir) / INFO_FILE).read_text(encoding="utf-8"))
    served = info.get("runtime")
    if info.get("kind") != "finetune" or served is None:
        return set()
    directory = Path(model_dir).resolve()
    unserved = {directory / name for runtime, name in ONNX_FILES.items() if runtime != served}
    if served != TORCH:
        unserved |= {directory / name for name in TORCH_FILES if name != "config.json"}
    return unserved


def torch_weights_dir(directory: Path) -> Path:
    """Where the torch weights of the model in ``directory`` are: the directory itself
    (a training's own), else the ``-weights`` entry of a registered model served on ONNX."""
    import yaml

    directory = Path(directory)
    if (directory / "model.safetensors").exists():
        return directory
    entry = directory / "model.yaml"  # BentoML's record of a stored model
    if entry.exists():
        stored = yaml.safe_load(entry.read_text(encoding="utf-8"))
        tag = f"{stored['name']}{WEIGHTS_SUFFIX}:{stored['version']}"
        try:
            return Path(get_model(tag).path)
        except LookupError:
            raise FileNotFoundError(
                f"{directory}: the model is stored without its torch weights, and their "
                f"entry {tag} is not in the store"
            ) from None
    raise FileNotFoundError(f"{directory}: no model.safetensors (torch weights)")


def list_models(name: str = MODEL_NAME) -> list:
    """Registered models of that name, newest first."""
    import bentoml

    models = [m for m in bentoml.models.list() if m.tag.name == name]
    return sorted(models, key=lambda m: m.info.creation_time, reverse=True)


def get_model(tag: str):
    """The registered model with this tag (``name:version``)."""
    import bentoml

    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as err:
        raise LookupError(f"no registered model {tag!r}; `socialcare models` lists them") from err


def stage_record(model) -> dict:
    """``{"stage": ..., "promotion": {...}}`` of a registered model (a candidate if unset)."""
    path = Path(model.path) / STAGE_FILE
    if not path.exists():
        return {"stage": CANDIDATE}
    return json.loads(path.read_text(encoding="utf-8"))


def stage_of(model) -> str:
    return stage_record(model)["stage"]


def production_model(name: str = MODEL_NAME):
    """The model of that name in production (the newest, should there be several), or None."""
    return next((m for m in list_models(name) if stage_of(m) == PRODUCTION), None)


def set_stage(tag: str, stage: str, promotion: dict | None = None) -> None:
    """Set a registered model's stage, and record the promotion decision about it."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    model = get_model(tag)
    record = stage_record(model) | {"stage": stage}
    if promotion is not None:
        record["promotion"] = promotion
    _write_stage(Path(model.path), record)


def mark_production(tag: str, promotion: dict | None = None) -> str | None:
    """Put ``tag`` in production and archive the model that was; return the archived tag."""
    model = get_model(tag)
    previous = production_model(model.tag.name)
    archived = None
    if previous is not None and previous.tag != model.tag:
        set_stage(str(previous.tag), ARCHIVED)
        archived = str(previous.tag)
    set_stage(str(model.tag), PRODUCTION, promotion)
    return archived


def _write_stage(directory: Path, record: dict) -> None:
    # Written aside, then renamed: a reader never sees half a file.
    partial = directory / (STAGE_FILE + ".partial")
    partial.write_text(json.dumps(record, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    os.replace(partial, directory / STAGE_FILE)


def _storable(value):
    """BentoML metadata takes basic types only: drop None values, recursively."""
    if isinstance(value, dict):
        return {str(k): _storable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value if v is not None]
    return value
