"""The baseline: TF-IDF word + character n-grams and logistic regression (scikit-learn)."""

from pathlib import Path

import joblib
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.multiclass import OneVsRestClassifier
from sklearn.pipeline import FeatureUnion, Pipeline

from socialcare.core.arrays import LabelArrays, has_sentiment
from socialcare.runtime.predictor import BASELINE_FILE


def tfidf_features() -> FeatureUnion:
    """Words catch vocabulary; character n-grams catch typos, missing accents and emojis."""
    return FeatureUnion(
        [
            (
                "words",
                TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, lowercase=True),
            ),
            (
                "chars",
                TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(2, 5),
                    min_df=2,
                    sublinear_tf=True,
                    lowercase=True,
                ),
            ),
        ]
    )


def fit_baseline(train: LabelArrays, seed: int, c: float = 4.0) -> dict[str, Pipeline | None]:
    """Two pipelines, each fitted only on the posts labelled for its head (None if none are),
    each post weighted by ``train.weights`` (sample_weight, routed to the classifiers)."""
    import sklearn

    def classifier():
        model = LogisticRegression(C=c, max_iter=2000, class_weight="balanced", random_state=seed)
        return model.set_fit_request(sample_weight=True)

    weights = train.post_weights()
    known = train.intent_known
    intents = sentiment = None
    with sklearn.config_context(enable_metadata_routing=True):
        if known.any():
            intents = Pipeline(
                [("features", tfidf_features()), ("classifier", OneVsRestClassifier(classifier()))]
            ).fit(
                [t for t, k in zip(train.texts, known, strict=True) if k],
                train.intents[known],
                sample_weight=weights[known],
            )
        labelled = has_sentiment(train.sentiment)
        if labelled.any():
            sentiment = Pipeline([("features", tfidf_features()), ("classifier", classifier())])
            sentiment.fit(
                [t for t, s in zip(train.texts, labelled, strict=True) if s],
                train.sentiment[labelled],
                sample_weight=weights[labelled],
            )
    return {"intents": intents, "sentiment": sentiment}


def save_baseline(pipelines: dict[str, Pipeline], directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    joblib.dump(pipelines, directory / BASELINE_FILE)
