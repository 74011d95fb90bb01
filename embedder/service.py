"""The embedder's domain logic: validate, load the model, batch, encode."""

from __future__ import annotations

import asyncio
import io
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from embedder.batching import DynamicBatcher
from embedder.metrics import EmbedderMetrics
from embedder.models.base import TEXT_KINDS, BadImage, Encoder, ModelSpec, UnsupportedInput
from embedder.registry import ModelStatus, Registry
from embedder.settings import EmbedderSettings
from protos.errors import InvalidArgument

IMAGE_FORMATS = ("PNG", "JPEG", "WEBP")


def check_image(data: bytes, index: int) -> None:
    """Refuse bytes that are not a readable PNG, JPEG or WebP image."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            fmt = img.format
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise InvalidArgument(f"image {index} is not a readable PNG, JPEG or WebP file ({exc})") from None
    if fmt not in IMAGE_FORMATS:
        raise InvalidArgument(f"image {index} is {fmt}; send PNG, JPEG or WebP")


class EmbedService:
    """Embeds texts and images with the registry's models; one encoding thread per model."""

    def __init__(self, registry: Registry, settings: EmbedderSettings, metrics: EmbedderMetrics) -> None:
        self._registry = registry
        self._settings = settings
        self._metrics = metrics
        self._batchers: dict[tuple[str, str], DynamicBatcher] = {}
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._load_lock = asyncio.Lock()

    async def load(self, ref: str) -> Encoder:
        """The loaded model (loading runs off the event loop; one load at a time)."""
        async with self._load_lock:
            encoder = await asyncio.to_thread(self._registry.load, ref)
        if encoder.spec.ref not in self._executors:
            self._executors[encoder.spec.ref] = ThreadPoolExecutor(1, thread_name_prefix=encoder.spec.name)
            self._metrics.models_loaded.set(len(self._executors))
        return encoder

    async def embed_texts(self, ref: str, texts: Sequence[str], kind: str) -> tuple[ModelSpec, np.ndarray]:
        """Vectors for texts, as queries or passages."""
        if kind not in TEXT_KINDS:
            raise InvalidArgument(f"kind must be one of {TEXT_KINDS}, not {kind!r}")
        self._check_count(len(texts), "texts")
        for i, text in enumerate(texts):
            if len(text) > self._settings.max_text_chars:
                raise InvalidArgument(f"text {i} has {len(text)} characters; the limit is "
                                      f"{self._settings.max_text_chars}: split it into chunks first")
        encoder = await self.load(ref)
        if not encoder.spec.handles("text"):
            raise InvalidArgument(f"model {encoder.spec.ref} embeds {encoder.spec.modality} only, not text")
        check = getattr(encoder, "check_texts", None)
        if check is not None:
            # Per request, before batching: one caller's over-long text must not fail a batch shared with others.
            try:
                await asyncio.to_thread(check, list(texts), kind)
            except UnsupportedInput as exc:
                raise InvalidArgument(f"{exc} (model {encoder.spec.ref})") from None
        batcher = self._batcher(encoder, f"text:{kind}", lambda items: encoder.embed_texts(items, kind))
        return encoder.spec, await self._run(batcher, texts, encoder.spec, "text")

    async def embed_images(self, ref: str, images: Sequence[bytes]) -> tuple[ModelSpec, np.ndarray]:
        """Vectors for encoded images."""
        self._check_count(len(images), "images")
        for i, image in enumerate(images):
            if not image:
                raise InvalidArgument(f"image {i} is empty")
            if len(image) > self._settings.max_image_bytes:
                limit = self._settings.max_image_bytes
                raise InvalidArgument(f"image {i} has {len(image)} bytes; the limit is {limit}")
            # Checked here, per request, so one caller's broken file cannot fail a batch shared with others.
            check_image(image, i)
        encoder = await self.load(ref)
        if not encoder.spec.handles("image"):
            raise InvalidArgument(f"model {encoder.spec.ref} embeds {encoder.spec.modality} only, not images")
        batcher = self._batcher(encoder, "image", encoder.embed_images)
        return encoder.spec, await self._run(batcher, images, encoder.spec, "image")

    def models(self) -> list[ModelStatus]:
        """Every registered model and whether it can be served."""
        return self._registry.status()

    @property
    def default_ref(self) -> str:
        """The model used when a request names none."""
        return self._registry.default

    def close(self) -> None:
        """Stop the encoding threads."""
        for executor in self._executors.values():
            executor.shutdown(wait=False, cancel_futures=True)

    def _check_count(self, n: int, what: str) -> None:
        if n == 0:
            raise InvalidArgument(f"no {what} given")
        if n > self._settings.max_items:
            raise InvalidArgument(f"{n} {what} in one request; the limit is {self._settings.max_items}")

    def _batcher(self, encoder: Encoder, key: str, encode) -> DynamicBatcher:  # noqa: ANN001
        ref = encoder.spec.ref
        if (ref, key) not in self._batchers:
            kind = key.split(":")[0]

            def on_batch(size: int, seconds: float) -> None:
                self._metrics.batch_size.labels(ref, kind).observe(size)
                self._metrics.batch_latency.labels(ref, kind).observe(seconds)
                self._metrics.items.labels(ref, kind).inc(size)

            self._batchers[(ref, key)] = DynamicBatcher(encode, self._executors[ref], self._settings.max_batch_items,
                                                        self._settings.max_wait_ms / 1000.0, on_batch)
        return self._batchers[(ref, key)]

    async def _run(self, batcher: DynamicBatcher, items: Sequence, spec: ModelSpec, kind: str) -> np.ndarray:
        try:
            return await batcher.submit(list(items))
        except BadImage as exc:
            raise InvalidArgument(f"{exc} (model {spec.ref})") from None
        except UnsupportedInput as exc:
            raise InvalidArgument(str(exc)) from None
