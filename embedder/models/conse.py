"""ConSE text-to-image (Norouzi et al., 2014): an image becomes a probability-weighted mean of the text
embeddings of its likeliest ImageNet classes, so a text model's queries (any language it reads) find images.

Texts pass straight through the text encoder; images go through the classifier, then into the same space.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from embedder.digest import weights_digest
from embedder.models.base import Encoder, ModelSpec, l2_normalise
from embedder.models.efficientnet import EfficientNetLite0Encoder
from embedder.models.imagenet import ImageNetClass, class_data_files, imagenet_classes

NAME = "conse-e5-efficientnet"
VERSION = "0.1.0"


@dataclass(frozen=True)
class PromptSet:
    """One way of writing a class as text: a template over {name} and {definition}, read as query or passage."""

    template: str
    kind: str = "passage"
    all_lemmas: bool = False            # one prompt per WordNet synonym (averaged) instead of the first lemma

    def prompts(self, cls: ImageNetClass) -> list[str]:
        """The texts of this set for `cls`."""
        names = cls.lemmas if self.all_lemmas else cls.lemmas[:1]
        return [self.template.format(name=n, definition=cls.definition) for n in names]


@dataclass(frozen=True)
class ConseConfig:
    """How class names become text vectors and how an image's class probabilities mix them."""

    prompt_sets: tuple[PromptSet, ...] = (PromptSet("a photo of a {name}"),)
    top: int = 10                       # classes mixed per image
    temperature: float = 1.0            # softmax(logits / temperature); >1 spreads weight over more classes
    centre: bool = False                # subtract the mean class vector (removes the part every image shares)

    def prompts(self, cls: ImageNetClass) -> list[str]:
        """Every text embedded for `cls`."""
        return [p for ps in self.prompt_sets for p in ps.prompts(cls)]


# The first measurement in DESIGN.md: "a photo of a {lemma}", top 10, temperature 1.
BASELINE = ConseConfig()
# Chosen on the tuning half of the emoji set only (bench/emoji_eval.py, SPLIT_SEED): the WordNet gloss read as a
# passage plus "a photo of a ..." read as a query, softer probabilities over more classes.
TUNED = ConseConfig(
    prompt_sets=(PromptSet("{name}: {definition}", "passage"), PromptSet("a photo of a {name}", "query")),
    top=20, temperature=3.0,
)


def _embed_all(text: Encoder, texts: list[str], kind: str, batch: int, done: int, total: int,
               progress: Callable[[int, int], None] | None) -> np.ndarray:
    parts = [np.zeros((0, text.spec.dim), np.float32)]
    for start in range(0, len(texts), batch):
        parts.append(text.embed_texts(texts[start:start + batch], kind))
        if progress:
            progress(done + min(start + batch, len(texts)), total)
    return np.concatenate(parts)


def class_vectors(text: Encoder, config: ConseConfig, progress: Callable[[int, int], None] | None = None,
                  batch: int = 64) -> np.ndarray:
    """(1000, dim) unit vectors in ImageNet output order: per prompt set, each class's prompts averaged and
    normalised; then the sets summed and normalised."""
    classes = imagenet_classes()
    total, done = sum(len(config.prompts(c)) for c in classes), 0
    combined = np.zeros((len(classes), text.spec.dim), np.float64)
    for prompt_set in config.prompt_sets:
        prompts = [prompt_set.prompts(c) for c in classes]
        flat = [p for ps in prompts for p in ps]
        emb = _embed_all(text, flat, prompt_set.kind, batch, done, total, progress)
        done += len(flat)
        sums = np.zeros_like(combined)
        np.add.at(sums, np.repeat(np.arange(len(classes)), [len(ps) for ps in prompts]), emb)
        combined += l2_normalise(sums)
    return l2_normalise(combined)


def cached_class_vectors(text: Encoder, config: ConseConfig, cache_dir: Path | None,
                         progress: Callable[[int, int], None] | None = None) -> np.ndarray:
    """class_vectors, kept in cache_dir under a key of the text model's weights digest and the prompts."""
    if cache_dir is None or not text.spec.weights:
        return class_vectors(text, config, progress)
    key = hashlib.sha256(json.dumps({
        "text": text.spec.ref, "digest": weights_digest(text.spec.weights), "config": asdict(config),
        "classes": [c.synset + c.definition + ",".join(c.lemmas) for c in imagenet_classes()],
    }, sort_keys=True).encode()).hexdigest()[:24]
    path = Path(cache_dir) / f"conse-classes-{key}.npy"
    if path.is_file():
        vectors = np.load(path, allow_pickle=False)
        if vectors.shape == (len(imagenet_classes()), text.spec.dim):
            return vectors
    vectors = class_vectors(text, config, progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npy")
    np.save(tmp, vectors)
    tmp.replace(path)  # atomic: a concurrent reader never sees half a file
    return vectors


def mix(probs: np.ndarray, vectors: np.ndarray, top: int, centre: np.ndarray | None = None) -> np.ndarray:
    """ConSE: each row's top-`top` probabilities renormalised and used to average class vectors; unit rows."""
    idx = np.argpartition(-probs, top - 1, axis=1)[:, :top] if top < probs.shape[1] else None
    if idx is None:
        weights = probs
    else:
        weights = np.zeros_like(probs)
        np.put_along_axis(weights, idx, np.take_along_axis(probs, idx, axis=1), axis=1)
    weights = weights / weights.sum(axis=1, keepdims=True)
    out = weights @ vectors
    return l2_normalise(out - centre if centre is not None else out)


class ConseEncoder:
    """Text and images in one text model's space: texts via the text model, images via ConSE."""

    def __init__(self, spec: ModelSpec | None, text: Encoder, image: EfficientNetLite0Encoder,
                 config: ConseConfig = TUNED, progress: Callable[[int, int], None] | None = None,
                 cache_dir: Path | None = None) -> None:
        self.text, self.image, self.config = text, image, config
        self.spec = spec or ModelSpec(
            name=NAME, version=VERSION, dim=text.spec.dim, modality="text+image",
            weights=(*text.spec.weights, *image.spec.weights, *class_data_files()),
            description=f"ConSE over {image.spec.ref} in {text.spec.ref}'s space",
        )
        if self.spec.dim != text.spec.dim:
            raise ValueError(f"{self.spec.ref} declares dim {self.spec.dim} but {text.spec.ref} gives {text.spec.dim}")
        self.classes = cached_class_vectors(text, config, cache_dir, progress)
        self.centre = self.classes.mean(axis=0) if config.centre else None

    def embed_texts(self, texts: list[str], kind: str) -> np.ndarray:
        """The text model's own vectors (the space the images are put in)."""
        return self.text.embed_texts(texts, kind)

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        """ConSE vectors (n, dim): mixtures of the images' likeliest class-name embeddings."""
        if not images:
            return np.zeros((0, self.spec.dim), np.float32)
        probs = self.image.run(images).probabilities(self.config.temperature)
        return self.from_probabilities(probs)

    def from_probabilities(self, probs: np.ndarray) -> np.ndarray:
        """ConSE vectors for precomputed class probabilities (n, 1000)."""
        return mix(probs, self.classes, self.config.top, self.centre)
