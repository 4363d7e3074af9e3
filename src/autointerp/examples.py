"""Example windows: per-token strings and the on-disk example table (see docs/formats.md).

Token strings are built one token at a time from each token's *bytes*, so that
``"".join(tokens)`` is the window's text and a highlighted token never loses characters: a
character whose UTF-8 bytes are split over several tokens is attached to the token that
completes it (the others get ``""``). ``tokenizer.batch_decode`` of a window is never used.

Every prompt of every stage shows token strings through :func:`display_text` /
:func:`display_token`: control tokens (``<|im_start|>``, ``<bos>``, ...) become visible
neutral placeholders (``[im_start]``), never control tokens inside a chat message.
"""

from __future__ import annotations

import codecs
import re
from pathlib import Path

import pandas as pd
import pyarrow as pa

from .errors import AutointerpError

EXAMPLE_COLUMNS = [
    "hookpoint",
    "latent",
    "split",
    "kind",
    "quantile",
    "context",
    "start",
    "token_ids",
    "tokens",
    "activations",
    "max_activation",
    "marked",
    "example_id",
]

EXAMPLE_SCHEMA = pa.schema(
    [
        ("hookpoint", pa.string()),
        ("latent", pa.int64()),
        ("split", pa.string()),
        ("kind", pa.string()),
        ("quantile", pa.int64()),
        ("context", pa.int64()),
        ("start", pa.int64()),
        ("token_ids", pa.list_(pa.int64())),
        ("tokens", pa.list_(pa.string())),
        ("activations", pa.list_(pa.float32())),
        ("max_activation", pa.float32()),
        ("marked", pa.int64()),
        ("example_id", pa.string()),
    ]
)

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


# ---------------------------------------------------------------- tokens as prompts show them

# Control tokens of chat models and tokenizers. A chat template re-encodes these strings as
# real control tokens when they appear inside a message (a fake turn boundary), so no prompt
# shows them verbatim: ``display_text`` replaces each by a visible neutral placeholder, its
# name in lower case in square brackets (``<|im_start|>`` -> ``[im_start]``, ``<bos>`` ->
# ``[bos]``, ``[INST]`` -> ``[inst]``). Placeholders are kept rather than dropped because
# latents often fire on exactly these tokens (document starts). Covered: the ``<|name|>``
# family (SmolLM2, Qwen, Llama 3, GPT), the angle-bracket names below (SmolLM2's added tokens,
# SentencePiece and Gemma), Mistral's upper-case bracket names, and any ``extra`` strings
# (e.g. a tokenizer's ``all_special_tokens``).
_ANGLE_NAMES = (
    "s",
    "/s",
    "unk",
    "pad",
    "bos",
    "eos",
    "mask",
    "cls",
    "sep",
    "start_of_turn",
    "end_of_turn",
    "start_of_image",
    "end_of_image",
    "endoftext",
    "repo_name",
    "reponame",
    "file_sep",
    "filename",
    "gh_stars",
    "issue_start",
    "issue_comment",
    "issue_closed",
    "jupyter_start",
    "jupyter_text",
    "jupyter_code",
    "jupyter_output",
    "jupyter_script",
    "empty_output",
    "commit_before",
    "commit_msg",
    "commit_after",
)
_BRACKET_NAMES = (
    "INST",
    "/INST",
    "SYSTEM_PROMPT",
    "/SYSTEM_PROMPT",
    "TOOL_CALLS",
    "AVAILABLE_TOOLS",
    "/AVAILABLE_TOOLS",
    "TOOL_RESULTS",
    "/TOOL_RESULTS",
    "IMG",
    "IMG_BREAK",
    "IMG_END",
)
_CONTROL = re.compile(
    r"<\|[^<>|\s]{1,64}\|>"
    r"|<(?:" + "|".join(re.escape(n) for n in _ANGLE_NAMES) + r")>"
    r"|\[(?:" + "|".join(re.escape(n) for n in _BRACKET_NAMES) + r")\]"
)


def _placeholder(special: str) -> str:
    name = special.strip("<>[]|").strip() or "special"
    return f"[{name.lower()}]"


def display_text(text: str, extra: tuple[str, ...] | frozenset[str] = ()) -> str:
    """``text`` as a prompt shows it: every control-token string (a whole token or spelled
    across several) replaced by its placeholder, and carriage returns dropped. Idempotent."""
    text = _CONTROL.sub(lambda m: _placeholder(m.group()), text.replace("\r", ""))
    for s in extra:
        if s and s in text:
            text = text.replace(s, _placeholder(s))
    return text


def display_token(token: str, extra: tuple[str, ...] | frozenset[str] = ()) -> str:
    """One token string as a prompt shows it: :func:`display_text`, with line breaks written
    ``\\n`` so that an example stays on one line of the prompt."""
    return display_text(token, extra).replace("\n", "\\n")


def display_window(tokens, extra: tuple[str, ...] | frozenset[str] = ()) -> str:
    """A window's token strings joined as a prompt shows them (control tokens spelled across
    several tokens are caught too)."""
    return display_text("".join(display_token(t, extra) for t in tokens), extra)


def special_token_strings(tokenizer) -> frozenset[str]:
    """A tokenizer's special and added control tokens (for ``extra``)."""
    out = set(getattr(tokenizer, "all_special_tokens", []) or [])
    for t in (getattr(tokenizer, "added_tokens_decoder", None) or {}).values():
        if getattr(t, "special", False):
            out.add(str(t.content))
    return frozenset(out)


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
