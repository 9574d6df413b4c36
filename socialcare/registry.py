"""The model registry: trained model directories kept in the BentoML model store.

Training registers, serving and `socialcare predict` load, notebooks compare. Each
entry carries its provenance in BentoML labels and metadata.
"""

import shutil
from pathlib import Path

MODEL_NAME = "socialcare-classifier"


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


def get_model(tag: str | None = None, name: str = MODEL_NAME):
    """The registered model with this tag (``name:version`` or ``name:latest``), or the newest."""
    import bentoml

    if tag is None:
        models = list_models(name)
        if not models:
            raise LookupError(f"no model {name!r} is registered; run `socialcare train` first")
        return models[0]
    try:
        return bentoml.models.get(tag)
    except bentoml.exceptions.NotFound as err:
        raise LookupError(f"no registered model {tag!r}; `socialcare models` lists them") from err


def model_path(tag: str | None = None, name: str = MODEL_NAME) -> tuple[str, Path]:
    """(tag, directory) of a registered model, ready for ``Predictor``."""
    model = get_model(tag, name)
    return str(model.tag), Path(model.path)


def _storable(value):
    """BentoML metadata takes basic types only: drop None values, recursively."""
    if isinstance(value, dict):
        return {str(k): _storable(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_storable(v) for v in value if v is not None]
    return value
