"""What every model the embedder serves looks like: a spec and an encoder."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

MODALITIES = ("text", "image", "text+image")
TEXT_KINDS = ("query", "passage")


@dataclass(frozen=True)
class ModelSpec:
    """Identity of a model: name@version, output dimension, modality, and its weight files."""

    name: str
    version: str
    dim: int
    modality: str                      # one of MODALITIES
    weights: tuple[Path, ...] = ()     # every file whose bytes decide the vectors; digested by the registry
    description: str = ""
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def ref(self) -> str:
        """The `name@version` string collections bind to."""
        return f"{self.name}@{self.version}"

    def handles(self, what: str) -> bool:
        """True when the model embeds `what` ("text" or "image")."""
        return what in self.modality.split("+")


class Encoder(Protocol):
    """A loaded model. Outputs are float32, shape (n, spec.dim), L2-normalised rows."""

    spec: ModelSpec

    def embed_texts(self, texts: list[str], kind: str) -> np.ndarray:
        """Embed texts; kind is "query" or "passage" (models without the distinction ignore it)."""
        ...

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        """Embed encoded images (PNG, JPEG or WebP bytes)."""
        ...


class UnsupportedInput(ValueError):
    """The model cannot embed this kind of input (e.g. text for an image-only model)."""


class BadImage(ValueError):
    """Image bytes that do not decode as PNG, JPEG or WebP."""


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)
