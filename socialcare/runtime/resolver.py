"""Which model: one answer for every command, the service, the notebooks and benchmarks.

A model is named by

- nothing: the production model, else the newest registered one (logged, so that a
  log always says which model was picked and why);
- ``production``: the production model (an error when there is none);
- ``latest`` (or ``NAME:latest``): the newest registered model;
- a registered tag, ``NAME:VERSION``;
- the path of a model directory (``artifacts/models/...``), registered or not.
"""

import logging
from dataclasses import dataclass
from pathlib import Path

from socialcare.runtime.registry import MODEL_NAME, get_model, list_models, production_model

PRODUCTION, LATEST = "production", "latest"

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: its tag (the path itself for an unregistered directory) and files."""

    tag: str
    directory: Path


def resolve_model(spec: str | Path | None = None, name: str = MODEL_NAME) -> ModelRef:
    """The model ``spec`` names (see the module docstring); LookupError when there is none."""
    if spec is not None and Path(spec).is_dir():
        return ModelRef(str(spec), Path(spec))
    word = None if spec is None else str(spec).strip()
    if word is not None and word.endswith(":" + LATEST):
        name, word = word.rsplit(":", 1)[0], LATEST
    if word in (None, PRODUCTION):
        model = production_model(name)
        if model is not None:
            logger.info("using the production model %s", model.tag)
            return _ref(model)
        if word == PRODUCTION:
            raise LookupError(f"no {name} model is in production; see `socialcare promote`")
    if word in (None, LATEST):
        models = list_models(name)
        if not models:
            raise LookupError(f"no model {name!r} is registered; run `socialcare train` first")
        if word is None:
            logger.warning(
                "no %s model is in production (see `socialcare promote`): using the newest, %s",
                name,
                models[0].tag,
            )
        return _ref(models[0])
    return _ref(get_model(word if ":" in word else f"{name}:{word}"))


def _ref(model) -> ModelRef:
    return ModelRef(str(model.tag), Path(model.path))


def load_predictor(spec: str | Path | None = None, **options):
    """A Predictor for the model ``spec`` names; ``options`` go to Predictor (runtime...)."""
    from socialcare.runtime.predictor import Predictor

    ref = resolve_model(spec)
    return Predictor(ref.directory, tag=ref.tag, **options)


def model_info(spec: str | Path | None = None) -> dict:
    """The socialcare.json of the model ``spec`` names, without loading the model."""
    import json

    from socialcare.runtime.predictor import INFO_FILE

    return json.loads((resolve_model(spec).directory / INFO_FILE).read_text(encoding="utf-8"))
