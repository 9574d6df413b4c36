"""Default paths, each defined once. Every command takes them as options."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_DIR = REPO_ROOT / "data"
SEED_DIR = DATA_DIR / "seed"
SPLITS = ("train", "validation", "test")
QUALITY_DIR = DATA_DIR / "quality"
# Public benchmark corpora live beside the repository, never inside it.
PUBLIC_DATA_DIR = REPO_ROOT.parent / "shared" / "data" / "public"


def seed_split(split: str) -> Path:
    """Path of one of the shipped seed splits (train, validation or test)."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    return SEED_DIR / f"{split}.jsonl"


# Converted backbones and other derived, re-creatable files (never committed).
CACHE_DIR = Path(os.environ.get("SOCIALCARE_CACHE", Path.home() / ".cache" / "socialcare"))
# Trained model directories, evaluation reports and predictions (never committed).
ARTIFACTS_DIR = REPO_ROOT / "artifacts"
