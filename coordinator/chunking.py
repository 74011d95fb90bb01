"""Split long texts into overlapping word windows, each embedded on its own."""

from __future__ import annotations

DEFAULT_WORDS = 160     # ~200-250 model tokens of English: well inside E5's and MiniLM's input limits
DEFAULT_OVERLAP = 32
MAX_WORDS = 2048


def chunk_text(text: str, words: int, overlap: int) -> list[str]:
    """Windows of `words` words, each starting `words - overlap` words after the last; at least one."""
    tokens = text.split()
    if len(tokens) <= words:
        return [text]
    step = words - overlap
    out = []
    for start in range(0, len(tokens), step):
        out.append(" ".join(tokens[start:start + words]))
        if start + words >= len(tokens):
            break
    return out
