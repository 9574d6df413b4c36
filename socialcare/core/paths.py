"""Default paths, each defined once. Every command takes them as options."""

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA_DIR = REPO_ROOT / "data"
SEED_DIR = DATA_DIR / "seed"
SPLITS = ("train", "validation", "test")
QUALITY_DIR = DATA_DIR / "quality"
# The two independent labelling passes over the doubly labelled posts (agreement, label
# quality): v1's sample, and every post data v2 added.
FIRST_PASSES = (QUALITY_DIR / "first_pass.jsonl", QUALITY_DIR / "v2" / "first_pass.jsonl")
SECOND_PASSES = (QUALITY_DIR / "second_pass.jsonl", QUALITY_DIR / "v2" / "second_pass.jsonl")
# The fictional insurers our posts name, per language (the style profile counts them).
INSURERS_FILE = DATA_DIR / "insurers.json"
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
# Reviewers' labels, one append-only file per labelling round; training reads them too.
LABELLED_DIR = DATA_DIR / "labelled"
# Runtime state of the service on this machine (never committed).
VAR_DIR = REPO_ROOT / "var"
# Posts the service is unsure about, waiting for a reviewer (PII masked).
REVIEW_QUEUE = VAR_DIR / "review_queue.sqlite"
# The insurer's response policy: which action each kind of post gets.
POLICY_FILE = REPO_ROOT / "serving" / "policy.yaml"
# What operators load: Prometheus alert rules and the Grafana dashboard (generated).
ALERT_RULES = REPO_ROOT / "ops" / "prometheus" / "alerts.yml"
GRAFANA_DASHBOARD = REPO_ROOT / "ops" / "grafana" / "socialcare.json"
