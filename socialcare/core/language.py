"""Offline language detection for posts that arrive without a ``lang``.

lingua ships its n-gram models inside the wheel, so nothing is downloaded at run time.
It is restricted to the languages an insurer in Sweden or Italy actually sees: the
fewer candidates, the fewer confusions on short posts.
"""

from collections.abc import Sequence
from functools import cache
from typing import Literal

from socialcare.core.labels import LANGS

# Every ISO 639-1 code, lower case: what a post's ``lang`` may say, given or detected.
ISO_639_1 = (
    "aa ab ae af ak am an ar as av ay az ba be bg bi bm bn bo br bs ca ce ch co cr cs cu cv"
    " cy da de dv dz ee el en eo es et eu fa ff fi fj fo fr fy ga gd gl gn gu gv ha he hi ho"
    " hr ht hu hy hz ia id ie ig ii ik io is it iu ja jv ka kg ki kj kk kl km kn ko kr ks ku"
    " kv kw ky la lb lg li ln lo lt lu lv mg mh mi mk ml mn mr ms mt my na nb nd ne ng nl nn"
    " no nr nv ny oc oj om or os pa pi pl ps pt qu rm rn ro ru rw sa sc sd se sg si sk sl sm"
    " sn so sq sr ss st su sv sw ta te tg th ti tk tl tn to tr ts tt tw ty ug uk ur uz ve vi"
    " vo wa wo xh yi yo za zh zu"
).split()
LanguageCode = Literal[tuple(ISO_639_1)]

# Besides sv and it: neighbours that share vocabulary with them (da, nb, nn, fi, es, pt,
# fr) and the big immigrant and tourist languages, so that those posts are recognised as
# "other" instead of being forced into sv or it.
OTHER_LANGUAGES = (
    "en", "da", "nb", "nn", "fi", "de", "fr", "es", "pt", "pl", "ro", "ar", "tr", "ru", "so",
)  # fmt: skip
# lingua answers "don't know" when the two best languages are this close: short posts
# ("ok", "grazie!", emoji only) are then left undetermined rather than guessed.
MIN_RELATIVE_DISTANCE = 0.1


@cache
def _detector():
    from lingua import IsoCode639_1, LanguageDetectorBuilder

    codes = [getattr(IsoCode639_1, code.upper()) for code in (*LANGS, *OTHER_LANGUAGES)]
    return (
        LanguageDetectorBuilder.from_iso_codes_639_1(*codes)
        .with_minimum_relative_distance(MIN_RELATIVE_DISTANCE)
        .with_preloaded_language_models()
        .build()
    )


def load_detector() -> None:
    """Load the language models now (about 3 s), so the first request does not pay for it."""
    _detector()


def detect_languages(texts: Sequence[str]) -> list[str | None]:
    """ISO 639-1 code of each text's language, or None when it cannot be told apart.

    Codes other than sv/it mean "another language": the post is still classified and
    flagged for review.
    """
    found = _detector().detect_languages_in_parallel_of(list(texts))
    return [language.iso_code_639_1.name.lower() if language else None for language in found]
