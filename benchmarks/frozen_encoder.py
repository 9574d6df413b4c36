"""The frozen encoder + logistic regression of the public sentiment benchmark.

Mean-pooled, L2-normalised embeddings of the default backbone (frozen), tokenised exactly
as a fine-tuned model reads its posts (`socialcare.runtime.tokens.TokenBatcher`: the
backbone's text prefix, `socialcare.core.limits.MAX_LENGTH` tokens), then scikit-learn
logistic regression whose C and class weighting are chosen on validation.
"""

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from socialcare.core import paths
from socialcare.core.labels import SENTIMENTS
from socialcare.core.limits import MAX_LENGTH

EMBEDDING_CACHE = paths.CACHE_DIR / "benchmarks" / "embeddings"
# C of the frozen-encoder logistic regression: a log grid, chosen on validation.
C_GRID = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0)
CLASS_WEIGHTS = (None, "balanced")


def macro_f1(true: np.ndarray, pred: np.ndarray) -> float:
    """Sentiment macro-F1 in percent over the three classes (as the XLM-T paper reports)."""
    from sklearn.metrics import f1_score

    labels = list(range(len(SENTIMENTS)))
    return 100 * float(f1_score(true, pred, labels=labels, average="macro", zero_division=0))


def embed(texts: Sequence[str], model_dir: str, prefix: str, batch_size: int = 32) -> np.ndarray:
    """Mean-pooled, L2-normalised encoder outputs (how e5 embeds), in length-sorted batches."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    from socialcare.runtime.model import mean_pool
    from socialcare.runtime.tokens import TokenBatcher

    tokens = TokenBatcher(AutoTokenizer.from_pretrained(model_dir), prefix, MAX_LENGTH)
    encoder = AutoModel.from_pretrained(model_dir, add_pooling_layer=False).eval()
    vectors = np.zeros((len(texts), encoder.config.hidden_size), dtype=np.float32)
    ids, _ = tokens.encode(texts)
    with torch.inference_mode():
        for rows, input_ids, attention_mask in tokens.batches(ids, batch_size):
            mask = torch.from_numpy(attention_mask)
            hidden = encoder(input_ids=torch.from_numpy(input_ids), attention_mask=mask)
            pooled = mean_pool(hidden.last_hidden_state, mask)
            vectors[rows] = torch.nn.functional.normalize(pooled).numpy()
    return vectors


def cached_embeddings(path: Path, texts: list[str], model_dir: str, prefix: str) -> np.ndarray:
    """Embeddings of one split, cached on disk under a hash of the model, prefix and texts.

    They depend on neither the seed nor the classifier, so every seed and C reuses them.
    """
    key = hashlib.sha256(
        "\0".join([str(model_dir), prefix, path.name, *texts]).encode("utf-8")
    ).hexdigest()[:16]
    cache = EMBEDDING_CACHE / f"{path.stem}-{key}.npy"
    if cache.is_file():
        return np.load(cache)
    vectors = embed(texts, model_dir, prefix)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, vectors)
    return vectors


def frozen_features(files: dict[str, Path]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(embeddings, sentiment indices) of each split's file, with the default backbone."""
    from socialcare.core.records import load_posts
    from training.backbone import DEFAULT_BASE_MODEL, resolve_base_model
    from training.train import default_text_prefix

    model_dir = resolve_base_model(DEFAULT_BASE_MODEL)
    prefix = default_text_prefix(DEFAULT_BASE_MODEL)
    features = {}
    for split, path in files.items():
        posts = load_posts([path])
        texts = [p.text for p in posts]
        labels = np.array([SENTIMENTS.index(p.sentiment) for p in posts])
        features[split] = (cached_embeddings(path, texts, model_dir, prefix), labels)
    return features


def fit_frozen_lr(
    features: dict[str, tuple[np.ndarray, np.ndarray]], seed: int
) -> tuple[dict, float, float]:
    """Pick C and class weighting on validation, then score that one model on test once.

    Returns (choice, validation macro-F1, test macro-F1).
    """
    from sklearn.linear_model import LogisticRegression

    (x_train, y_train), (x_val, y_val) = features["train"], features["validation"]

    def model(c: float, weight: str | None) -> LogisticRegression:
        return LogisticRegression(C=c, class_weight=weight, max_iter=5000, random_state=seed)

    scored = []
    for weight in CLASS_WEIGHTS:
        for c in C_GRID:
            fitted = model(c, weight).fit(x_train, y_train)
            scored.append((macro_f1(y_val, fitted.predict(x_val)), c, weight))
    # Ties go to the smaller C (the stronger regularisation), then to no weighting.
    best_val, c, weight = max(scored, key=lambda s: (s[0], -s[1], s[2] is None))
    x_test, y_test = features["test"]
    final = model(c, weight).fit(x_train, y_train)
    return {"C": c, "class_weight": weight}, best_val, macro_f1(y_test, final.predict(x_test))
