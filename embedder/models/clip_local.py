"""CLIP-style models from a local directory in transformers format: text and image towers in one space.

Users bring the weights (e.g. a `save_pretrained` copy of openai/clip-vit-base-patch32); nothing is
fetched from a hub. open_clip checkpoints are not read here: open_clip needs torchvision.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from embedder.models.base import ModelSpec, l2_normalise
from embedder.models.efficientnet import decode_images
from embedder.models.sentence import weight_files as directory_files

# Each entry: what the directory must hold, as alternatives (any one file of a group will do).
REQUIRED = {
    "model config": ("config.json",),
    "weights": ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json"),
    "tokenizer": ("tokenizer.json", "vocab.json"),
    "image preprocessing": ("preprocessor_config.json", "processor_config.json"),
}
BATCH_SIZE = 32


def check_directory(directory: Path) -> None:
    """Raise FileNotFoundError naming what a CLIP directory lacks (or that it does not exist)."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(
            f"CLIP model directory {directory} does not exist; these machines reach no model hub, so copy a "
            "transformers-format CLIP (config.json, model.safetensors, tokenizer, preprocessor config) there")
    missing = [f"{what} ({' or '.join(names)})" for what, names in REQUIRED.items()
               if not any((directory / n).is_file() for n in names)]
    if missing:
        raise FileNotFoundError(f"CLIP model directory {directory} is incomplete: missing {'; '.join(missing)}")


def weight_files(directory: Path) -> tuple[Path, ...]:
    """Every file of the directory that decides the vectors (weights, configs, tokenizer), for the digest."""
    check_directory(directory)
    return directory_files(Path(directory))


def _projected(out: object):
    # transformers 4.x returns the projected tensor; 5.x wraps it as pooler_output.
    return out if hasattr(out, "shape") else out.pooler_output


class ClipEncoder:
    """A CLIP model: embed_texts and embed_images give L2-normalised vectors of the same dimension."""

    def __init__(self, spec: ModelSpec, directory: Path, threads: int = 0) -> None:
        check_directory(directory)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoProcessor, CLIPModel

        if threads > 0:
            torch.set_num_threads(threads)
        self._torch = torch
        self.model = CLIPModel.from_pretrained(str(directory), local_files_only=True).eval()
        processor = AutoProcessor.from_pretrained(str(directory), local_files_only=True)
        self.tokenizer, self.image_processor = processor.tokenizer, processor.image_processor
        self.max_tokens = self.model.config.text_config.max_position_embeddings
        self.spec = spec
        if self.model.config.projection_dim != spec.dim:
            raise ValueError(f"{spec.ref}: the CLIP in {directory} projects to {self.model.config.projection_dim} "
                             f"dims, the registry says {spec.dim}")

    def embed_texts(self, texts: list[str], kind: str) -> np.ndarray:
        """Text-tower vectors (CLIP reads queries and passages alike); long texts are truncated."""
        parts = [np.zeros((0, self.spec.dim), np.float32)]
        with self._torch.inference_mode():
            for start in range(0, len(texts), BATCH_SIZE):
                tokens = self.tokenizer(list(texts[start:start + BATCH_SIZE]), padding=True, truncation=True,
                                        max_length=self.max_tokens, return_tensors="pt")
                parts.append(_projected(self.model.get_text_features(**tokens)).numpy())
        return l2_normalise(np.concatenate(parts))

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        """Image-tower vectors for PNG/JPEG/WebP bytes."""
        decoded = decode_images(images)
        parts = [np.zeros((0, self.spec.dim), np.float32)]
        with self._torch.inference_mode():
            for start in range(0, len(decoded), BATCH_SIZE):
                pixels = self.image_processor(images=decoded[start:start + BATCH_SIZE], return_tensors="pt")
                parts.append(_projected(self.model.get_image_features(**pixels)).numpy())
        return l2_normalise(np.concatenate(parts))
