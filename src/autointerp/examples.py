"""Example windows: per-token strings and the on-disk example table (see docs/formats.md).

Token strings are built one token at a time from each token's *bytes*, so that
``"".join(tokens)`` is the window's text and a highlighted token never loses characters: a
character whose UTF-8 bytes are split over several tokens is attached to the token that
completes it (the others get ``""``). ``tokenizer.batch_decode`` of a window is never used.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa

from .errors import AutointerpError

EXAMPLE_COLUMNS = ["hookpoint", "latent", "split", "kind", "quantile", "context", "start", "token_ids",
                   "tokens", "activations", "max_activation", "marked", "example_id"]

EXAMPLE_SCHEMA = pa.schema([
    ("hookpoint", pa.string()), ("latent", pa.int64()), ("split", pa.string()), ("kind", pa.string()),
    ("quantile", pa.int64()), ("context", pa.int64()), ("start", pa.int64()),
    ("token_ids", pa.list_(pa.int64())), ("tokens", pa.list_(pa.string())),
    ("activations", pa.list_(pa.float32())), ("max_activation", pa.float32()), ("marked", pa.int64()),
    ("example_id", pa.string()),
])

LIST_COLUMNS = ("token_ids", "tokens", "activations")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map used by byte-level BPE vocabularies."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


_BYTE_DECODER = {c: b for b, c in _bytes_to_unicode().items()}
_BYTE_FALLBACK = re.compile(r"^<0x([0-9A-Fa-f]{2})>$")


class TokenStrings:
    """Per-token byte strings of a tokenizer (looked up lazily), and window decoding."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._bytes: dict[int, bytes] = {}
        self._special = set(getattr(tokenizer, "all_special_ids", []) or [])

    def token_bytes(self, token_id: int) -> bytes:
        b = self._bytes.get(token_id)
        if b is not None:
            return b
        tok = self.tokenizer
        text = tok.decode([token_id], skip_special_tokens=False, clean_up_tokenization_spaces=False)
        if "\ufffd" not in text or token_id in self._special:
            b = text.encode("utf-8")
        else:  # part of a multi-byte character: recover the raw bytes
            piece = tok.convert_ids_to_tokens(token_id)
            m = _BYTE_FALLBACK.match(piece or "")
            if m:  # sentencepiece byte fallback
                b = bytes([int(m.group(1), 16)])
            elif piece and all(c in _BYTE_DECODER for c in piece):  # byte-level BPE
                b = bytes(_BYTE_DECODER[c] for c in piece)
            else:
                b = text.encode("utf-8")
        self._bytes[token_id] = b
        return b

    def window(self, token_ids) -> list[str]:
        """One string per token; their concatenation is the window's text."""
        dec = codecs.getincrementaldecoder("utf-8")(errors="replace")
        out = [dec.decode(self.token_bytes(int(t))) for t in token_ids]
        tail = dec.decode(b"", final=True)
        if tail and out:
            out[-1] += tail
        return out


def token_strings(tokenizer, token_ids) -> list[str]:
    """Per-token strings of one window (see :class:`TokenStrings`)."""
    return TokenStrings(tokenizer).window(token_ids)


def read_examples(folder: str | Path) -> pd.DataFrame:
    """All example partitions under ``folder`` as one DataFrame (list cells as Python lists)."""
    folder = Path(folder)
    files = sorted(folder.glob("*.parquet"))
    if not files:
        raise AutointerpError(f"no example files in '{folder}'. Run `kedro run --pipelines sample` first.")
    df = pd.concat([pd.read_parquet(f) for f in files], ignore_index=True)
    for col in LIST_COLUMNS:
        if col in df:
            df[col] = df[col].map(lambda a: a.tolist() if hasattr(a, "tolist") else list(a))
    return df
