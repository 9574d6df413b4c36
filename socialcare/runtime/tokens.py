"""Posts to token ids: the one tokenisation of a fine-tuned model, in training and serving.

The text prefix (e5's ``query: ``) and the number of tokens read (``max_length``) are
chosen when the model is trained and saved in its socialcare.json; training encodes its
posts here, and the predictor reads them back from there, so both always agree.

A thread reply is read as a text pair: the post it answers first, then the reply (with
the prefix), so that "samma här" means what it means under its parent. When the pair is
too long, the parent loses its beginning (the end of a parent is what the reply answers)
and the reply is never cut; a reply too long to leave room for any of its parent is read
alone.
"""

from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path

import numpy as np

# Batches may carry at most 25% padding, or up to 64 padding tokens in all (short texts).
MAX_PADDING = 1.25
PADDING_SLACK_TOKENS = 64
# A parent is read only when at least this many of its tokens fit beside the reply.
MIN_PARENT_TOKENS = 8


class TokenBatcher:
    """Texts → token ids once, then length-sorted batches padded to their longest member.

    Works on its own copy of the fast (Rust) tokenizer, configured once here: the
    transformers wrapper re-configures padding and truncation on every call, which both
    costs time and is not safe when several threads (a service's workers) share it.
    """

    def __init__(self, tokenizer, prefix: str, max_length: int):
        from tokenizers import Tokenizer

        self._tokenizer = Tokenizer.from_str(tokenizer.backend_tokenizer.to_str())
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length)
        # Pairs: only the first segment (the parent) is cut, from its start.
        self._pairs = Tokenizer.from_str(self._tokenizer.to_str())
        self._pairs.enable_truncation(max_length, strategy="only_first", direction="left")
        self._pair_specials = self._tokenizer.post_processor.num_special_tokens_to_add(True)
        self.pad_id = int(tokenizer.pad_token_id or 0)
        self.prefix = prefix
        self.max_length = max_length

    @classmethod
    def for_model(cls, directory: Path, info: dict) -> "TokenBatcher":
        """The tokenisation a fine-tuned model directory was trained with (its socialcare.json).

        Made once per process for the same tokenizer files: loading a 250k-piece
        vocabulary takes seconds, and training loads it for every runtime it compares.
        """
        directory = Path(directory).resolve()
        stamp = tuple(
            (path.name, path.stat().st_mtime_ns, path.stat().st_size)
            for path in sorted(directory.glob("*token*"))
        )
        return _batcher(directory, info["text_prefix"], int(info["max_length"]), stamp)

    def encode(
        self, texts: Sequence[str], parents: Sequence[str | None] | None = None
    ) -> tuple[list[list[int]], np.ndarray]:
        """Token ids of each text (with its parent, when it replies to one; prefix and
        special tokens added, truncated) and whether the text itself was truncated."""
        texts = [self.prefix + text for text in texts]
        encodings = self._tokenizer.encode_batch(texts)
        ids = [e.ids for e in encodings]
        truncated = np.array([bool(e.overflowing) for e in encodings], dtype=bool)
        for i, parent in enumerate(parents or []):
            # Room for a few of the parent's tokens besides the whole reply, else none.
            if parent and len(ids[i]) + MIN_PARENT_TOKENS <= self.max_length:
                ids[i] = self._pairs.encode(parent, texts[i]).ids
        return ids, truncated

    def batches(
        self, ids: list[list[int]], batch_size: int
    ) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(positions, input_ids, attention_mask) per batch, shortest texts first.

        Sorting by token count means each batch pads only to its own longest member, and a
        batch is closed early when the next text would pad it by more than MAX_PADDING:
        on CPU every padded token costs as much as a real one, while batching itself saves
        little (one 128-token review in 32 tweets of 30 tokens made that call 4x slower).
        """
        order = np.argsort([len(row) for row in ids], kind="stable")
        groups, current, real_tokens = [], [], 0
        for i in order:
            length = len(ids[i])
            padded = (len(current) + 1) * length  # sorted: the newcomer is the longest
            if current and (
                len(current) == batch_size
                or (
                    padded - real_tokens - length > PADDING_SLACK_TOKENS
                    and padded > MAX_PADDING * (real_tokens + length)
                )
            ):
                groups.append(current)
                current, real_tokens = [], 0
            current.append(i)
            real_tokens += length
        if current:
            groups.append(current)
        batches = []
        for group in groups:
            index = np.asarray(group)
            width = max(len(ids[i]) for i in index)
            input_ids = np.full((len(index), width), self.pad_id, dtype=np.int64)
            attention_mask = np.zeros((len(index), width), dtype=np.int64)
            for row, i in enumerate(index):
                input_ids[row, : len(ids[i])] = ids[i]
                attention_mask[row, : len(ids[i])] = 1
            batches.append((index, input_ids, attention_mask))
        return batches


@lru_cache(maxsize=8)
def _batcher(directory: Path, prefix: str, max_length: int, stamp: tuple) -> TokenBatcher:
    """``stamp``: the tokenizer files' names, times and sizes, so that a rewritten
    tokenizer is loaded again. A TokenBatcher never changes once made, so sharing is safe."""
    from transformers import AutoTokenizer

    return TokenBatcher(AutoTokenizer.from_pretrained(directory), prefix, max_length)
