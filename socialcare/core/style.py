"""How posts are written: a style profile per language, to compare our data with real posts.

`socialcare stats --style FILE...` prints it, and beside it the same profile of the real
public posts in ../shared/data/public when they are there. The data card shows both,
and tests/test_seed_data.py holds the shipped set to its targets.

The word lists are heuristics, and say so: a chat abbreviation or dialect word is one of
CHAT_WORDS; a post "misses diacritics" when it holds a word written without its accent
(DIACRITIC_LESS: "forsakring", "perche"), which the correctly written language never has.
"""

import json
import re
import statistics
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from socialcare.core.labels import INTENTS, LANGS
from socialcare.core.schema import Post

_WORD = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?", re.UNICODE)
_MENTION = re.compile(r"(?<!\w)@\w+")
_HASHTAG = re.compile(r"(?<!\w)#\w+")
_LINK = re.compile(r"https?://\S+|www\.\S+|(?<!\w)http(?!\w)", re.IGNORECASE)
_EMOJI = re.compile("[\U0001f000-\U0001faff\u2600-\u27bf\u2b00-\u2bff\u2300-\u23ff]")
_CAPS = re.compile(r"(?<!\w)[A-ZÅÄÖÀÈÉÌÒÙ]{3,}(?!\w)")

CHAT_WORDS = {
    "sv": {
        "asså", "assa", "typ", "iaf", "mkt", "pga", "ngn", "ngt", "ba", "sjukt", "jao", "nåt",
        "nån", "dom", "mej", "dej", "sej", "orka", "lol", "omg", "btw", "tbh", "wtf", "idk",
        "wallah", "shuno", "len", "bre", "jalla", "keff", "fett", "aa", "jaa", "nää", "ff",
        "e", "va", "tja", "tjena", "lixom", "nåe", "gött", "nåra", "int", "hä", "mä", "sä",
    },
    "it": {
        "cmq", "nn", "xké", "xke", "xché", "xche", "x", "tvb", "raga", "boh", "tt", "ke", "k",
        "qnd", "qlc", "qlcs", "cm", "dv", "mo", "nun", "ammo", "uè", "ué", "guagliò", "daje",
        "mannaggia", "azz", "minchia", "bro", "lol", "wtf", "omg", "ahah", "ahahah", "vabbè",
        "vabbe", "uff", "sto", "aò", "ao", "mica", "sti", "sta", "'sto", "fratè", "ja",
    },
}  # fmt: skip
DIACRITIC_LESS = {
    "sv": {
        "ar", "pa", "nar", "forsakring", "forsakringen", "forsakringsbolag", "nagon", "nagot",
        "nagra", "ocksa", "fran", "sjalv", "varfor", "annu", "hander", "battre", "forst",
        "gor", "ga", "sa", "da", "fa", "mycke", "skont", "kop", "hojning", "hojt", "sjalvrisk",
        "overhuvudtaget", "alltsa", "manad", "manader", "vantat", "vanta", "tank", "lange",
        "forstar", "okej", "tva", "nasta", "aterbetalning", "bade", "hallo", "fortfarande",
    },
    "it": {
        "perche", "piu", "gia", "pero", "citta", "puo", "cosi", "finche", "poiche", "sara",
        "verra", "dara", "societa", "qualita", "pieta", "affinche", "benche", "cioe", "lunedi",
        "martedi", "venerdi", "universita", "realta", "possibilita", "novita", "liberta",
        "e'", "perche'", "pero'", "piu'", "gia'", "puo'", "cosi'", "citta'",
    },
}  # fmt: skip
# Humour about a relative or a pet (the v1 data's stock joke): words that make it so.
KIN_OR_PET = {
    "sv": {
        "mormor", "farmor", "morfar", "farfar", "svärmor", "svärfar", "mamma", "pappa",
        "morsan", "farsan", "syrran", "brorsan", "kusin", "moster", "faster", "morbror",
        "farbror", "gubben", "frugan", "sambon", "sonen", "dottern", "ungarna", "barnen",
        "hund", "hunden", "hundar", "valp", "valpen", "katt", "katten", "katter", "kattungen",
        "häst", "hästen", "marsvin", "kanin", "kaninen", "undulat", "papegoja", "vovve",
    },
    "it": {
        "nonna", "nonno", "nonni", "suocera", "suocero", "mamma", "papà", "zia", "zio",
        "cugino", "cugina", "moglie", "marito", "figlio", "figlia", "figli", "bimbo", "bimba",
        "cane", "cani", "cagnolino", "cagnolina", "gatto", "gatta", "gatti", "micio",
        "criceto", "pappagallo", "cavallo", "coniglio", "cucciolo",
    },
}  # fmt: skip


def words(text: str) -> list[str]:
    """The words of a post; a link is not words."""
    return _WORD.findall(_LINK.sub(" ", text))


def opening(text: str, n: int = 3) -> str:
    """A post's first ``n`` words, lower-cased (to spot posts that all open the same way)."""
    return " ".join(word.lower() for word in words(text)[:n])


@dataclass(frozen=True)
class Insurer:
    """A fictional insurer and the ways posts name it (full name, short name, @handle)."""

    name: str
    aliases: tuple[str, ...]

    def named_in(self, text: str) -> bool:
        return self._pattern.search(text) is not None

    @cached_property
    def _pattern(self) -> re.Pattern[str]:
        alternatives = "|".join(re.escape(alias) for alias in self.aliases)
        return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def load_insurers(path: Path) -> dict[str, list[Insurer]]:
    """The fictional insurers per language: ``{"sv": [{"name", "aliases"}...], "it": ...}``."""
    if not path.exists():
        return {}
    table = json.loads(path.read_text(encoding="utf-8"))
    return {
        lang: [Insurer(entry["name"], tuple(entry["aliases"])) for entry in entries]
        for lang, entries in table.items()
    }


def _has_emoji_inside(text: str) -> bool:
    """An emoji followed by a word later in the post (not only a closing row of emoji)."""
    found = _EMOJI.search(text)
    return found is not None and bool(words(text[found.end() :]))


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags) if flags else 0.0


def profile(posts: Sequence[Post], lang: str, insurers: Sequence[Insurer] = ()) -> dict:
    """The style profile of ``posts`` (one language): shares are fractions of the posts."""
    if not posts:
        return {"posts": 0}
    texts = [post.text for post in posts]
    lengths = [len(words(text)) for text in texts]
    lowered = [{word.lower() for word in words(text)} | set(text.lower().split()) for text in texts]
    emoji = [bool(_EMOJI.search(text)) for text in texts]
    openings = Counter(opening(text) for text in texts if len(words(text)) >= 3)
    result = {
        "posts": len(posts),
        "words_median": float(statistics.median(lengths)),
        "words_p90": sorted(lengths)[int(0.9 * (len(lengths) - 1))],
        "share_10_words_or_fewer": _share([n <= 10 for n in lengths]),
        "share_40_words_or_more": _share([n >= 40 for n in lengths]),
        "share_mentions": _share([bool(_MENTION.search(text)) for text in texts]),
        "share_hashtags": _share([bool(_HASHTAG.search(text)) for text in texts]),
        "share_links": _share([bool(_LINK.search(text)) for text in texts]),
        "share_emoji": _share(emoji),
        "share_emoji_inside_of_emoji_posts": _share(
            [_has_emoji_inside(text) for text, has in zip(texts, emoji, strict=True) if has]
        ),
        "share_chat_or_dialect": _share([bool(ws & CHAT_WORDS.get(lang, set())) for ws in lowered]),
        "share_missing_diacritics": _share(
            [bool(ws & DIACRITIC_LESS.get(lang, set())) for ws in lowered]
        ),
        "share_all_caps_word": _share([bool(_CAPS.search(text)) for text in texts]),
        "share_replies": _share([post.parent_text is not None for post in posts]),
        "share_humour_about_kin_or_pets": _share(
            [
                bool(ws & KIN_OR_PET.get(lang, set()))
                for post, ws in zip(posts, lowered, strict=True)
                if post.labels and "humour" in post.labels
            ]
        ),
        "share_shared_opening": _share(
            [openings[opening(text)] > 1 for text in texts if len(words(text)) >= 3]
        ),
        "top_opening_share": max(openings.values(), default=0) / len(posts),
    }
    result |= insurer_profile(posts, insurers)
    return result


def insurer_profile(posts: Sequence[Post], insurers: Sequence[Insurer]) -> dict:
    """How many insurers are named, how concentrated, and whether naming one is a cue:
    P(intent | post names an insurer) / P(intent), for each intent (1.0 = no cue)."""
    if not insurers:
        return {}
    named = [[ins.name for ins in insurers if ins.named_in(post.text)] for post in posts]
    counts = Counter(name for names in named for name in set(names))
    result: dict = {
        "insurers_named": len(counts),
        "top_insurer_share": max(counts.values(), default=0) / len(posts),
        "share_naming_an_insurer": _share([bool(names) for names in named]),
    }
    labelled = [
        (post, bool(names))
        for post, names in zip(posts, named, strict=True)
        if post.labels is not None
    ]
    with_name = [post for post, has in labelled if has]
    for intent in INTENTS:
        overall = _share([intent in post.labels for post, _ in labelled])
        given_name = _share([intent in post.labels for post in with_name])
        result[f"cue_{intent}"] = given_name / overall if overall and with_name else None
    return result


def profiles_table(columns: dict[str, dict]) -> str:
    """A Markdown table: one row per measure, one column per profile (``"ours sv"``...)."""
    names = list(columns)
    measures = list(dict.fromkeys(key for column in columns.values() for key in column))
    lines = ["| measure | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    for measure in measures:
        cells = [_cell(measure, columns[name].get(measure)) for name in names]
        lines.append(f"| {measure} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _cell(measure: str, value) -> str:
    if value is None:
        return "-"
    if measure.startswith(("share_", "top_")):
        return f"{100 * value:.1f}%"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def profiles_by_language(
    posts: Sequence[Post], label: str, insurers: dict[str, list[Insurer]]
) -> dict[str, dict]:
    """``{"<label> <lang>": profile}`` for each labelled language present in ``posts``."""
    return {
        f"{label} {lang}": profile(
            [p for p in posts if p.lang == lang], lang, insurers.get(lang, [])
        )
        for lang in LANGS
        if any(p.lang == lang for p in posts)
    }
