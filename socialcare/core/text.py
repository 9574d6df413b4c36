"""Text normalisation shared by duplicate detection, splitting and models."""

import re
import unicodedata

_LINK = re.compile(r"(?:https?://|www\.)\S+", re.IGNORECASE)
_MENTION = re.compile(r"@\w+")


def duplicate_key(text: str) -> str:
    """The key two posts share when they are near-duplicates.

    Case, Unicode form, whitespace, @mentions, links and punctuation are ignored:
    "@user Ni är BÄST!!" and "ni är bäst https://t.co/x" are the same post. Emojis are
    kept ("🐶🐶🐶" and "🙄" are different posts). A post with nothing left (only
    mentions or links) is keyed by its exact text instead.
    """
    folded = unicodedata.normalize("NFKC", text).casefold()
    folded = _MENTION.sub(" ", _LINK.sub(" ", folded))
    key = "".join(" " if unicodedata.category(ch).startswith("P") else ch for ch in folded)
    return " ".join(key.split()) or "\0" + text.strip()


def post_key(text: str, parent_text: str | None = None) -> str:
    """The key two posts share when they are near-duplicates: a reply is the same post only
    under the same parent ("+1" under a question and under a complaint are two posts)."""
    key = duplicate_key(text)
    return key if parent_text is None else duplicate_key(parent_text) + "\x1f" + key
