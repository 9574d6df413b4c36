"""Text normalisation shared by duplicate detection, splitting and models."""

import re
import unicodedata

_LINK = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w+")
_NON_WORD = re.compile(r"[^\w\s]")


def duplicate_key(text: str) -> str:
    """The key two posts share when they are near-duplicates.

    Case, accents' Unicode form, whitespace, @mentions, links and punctuation are
    ignored: "@user Ni är BÄST!!" and "ni är bäst https://t.co/x" are the same post.
    """
    text = unicodedata.normalize("NFKC", text).casefold()
    text = _LINK.sub(" ", text)
    text = _MENTION.sub(" ", text)
    text = _NON_WORD.sub(" ", text)
    return " ".join(text.split())


def opening_words(text: str, n: int = 5) -> str:
    """The first n words of a post after duplicate normalisation (to spot template families)."""
    return " ".join(duplicate_key(text).split()[:n])
