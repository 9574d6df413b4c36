"""The model registry: trained model directories kept in the BentoML model store.

Training registers, serving and `socialcare predict` load, notebooks compare. Each
entry carries its provenance in BentoML labels and metadata, and a ``stage`` label:
``candidate`` when trained, ``production`` once `socialcare promote` has accepted it (one
model at a time), ``archived`` when a later model replaced it in production.
"""

import logging
import os
import shutil
from pathlib import Path

MODEL_NAME = "socialcare-classifier"
STAGE = "stage"
CANDIDATE, PRODUCTION, ARCHIVED = "candidate", "production", "archived"
STAGES = (CANDIDATE, PRODUCTION, ARCHIVED)

logger = logging.getLogger(__name__)


def register(
    model_dir: Path, labels: dict[str, str], metadata: dict, name: str = MODEL_NAME
) -> str:
    """Copy a trained model directory into the store; return its tag ``name:version``."""
    import bentoml

    with bentoml.models.create(name, labels=labels, metadata=_storable(metadata)) as model:
        shutil.copytree(model_dir, model.path, dirs_exist_ok=True)
    return str(model.tag)


def list_models(name: str = MODEL_NAME) -> list:
    """Registered models of that name, newest first."""
    import bentoml

    models = [m for m in bentoml.models.list() if m.tag.name == name]
    return sorted(models, key=lambda m: m.info.creation_time, reverse=True)


def production_model(name: str = MODEL_NAME):
    """The model of that name in production (the newest, should there be several), or None."""
    return next((m for m in list_models(name) if m.info.labels.get(STAGE) == PRODUCTION), None)


def get_model(tag: str | None = None, name: str = MODEL_NAME):
    """The registered model with this tag (``name:version`` or ``name:latest``).

    Without a tag: the production model, else the newest registered one (logged, so that
    a log always says which model a service or a command picked and why).
    """
    import bentoml

    if tag is None:
        production = production_model(name)
        if production is not None:
            logger.info("using the production model %s", production.tag)
            return production
        models = list_models(name)
        if not models:
            raise LookupError(f"no model {name!r} is registered; run `socialcare train` first")
        logger.warning(
            "no %s model is in production (see `socialcare promote`): using the newest, %s",
            name,
            models[0].tag,
        )
        return models[0]
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as err:
        raise LookupError(f"no registered model {tag!r}; `socialcare models` lists them") from err


def model_path(tag: str | None = None, name: str = MODEL_NAME) -> tuple[str, Path]:
    """(tag, directory) of a registered model, ready for ``Predictor``."""
    model = get_model(tag, name)
    return str(model.tag), Path(model.path)


def set_stage(tag: str, stage: str, metadata: dict | None = None) -> None:
    """Set a registered model's ``stage`` label, and merge ``metadata`` into its metadata.

    BentoML 1.4 has no public call to change a stored model's labels (they are fixed by
    ``bentoml.models.create``), so this rewrites the model's ``model.yaml`` the way BentoML
    writes it (``ModelInfo.to_dict``), checks that BentoML reads the new file back, and
    swaps it in atomically.
    """
    import yaml
    from bentoml._internal.models.model import MODEL_YAML_FILENAME, ModelInfo

    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)}")
    model = get_model(tag)
    content = model.info.to_dict()
    content["labels"] = {**content.get("labels", {}), STAGE: stage}
    if metadata:
        content["metadata"] = {**content.get("metadata", {}), **_storable(metadata)}
    text = yaml.safe_dump(content, sort_keys=False)
    ModelInfo.from_yaml_file(text)  # BentoML's own parser: fails here, not when next loaded
    target = Path(model.path) / MODEL_YAML_FILENAME
    partial = target.with_name(target.name + ".partial")
    partial.write_text(text, encoding="utf-8")
    os.replace(partial, target)


def mark_production(tag: str, metadata: dict | None = None) -> str | None:
    """Put ``tag`` in production and archive the model that was; return the archived tag."""
    model = get_model(tag)
    previous = production_model(model.tag.name)
    if previous is not None and previous.tag != model.tag:
        set_stage(str(previous.tag), ARCHIVED)
    set_stage(str(model.tag), PRODUCTION, metadata)
    return str(previous.tag) if previous is not None and previous.tag != model.tag else None


def _storable(value):
    """BentoML metadata takes basic types only: drop None values, recursively."""
    if isinstance(value, dict):
        return {str(k): _storable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value if v is not None]
    return value
