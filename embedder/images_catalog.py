"""Registry entries for the image side: EfficientNet-Lite0 features, ConSE text-to-image, local CLIP."""

from __future__ import annotations

from pathlib import Path

from embedder.models.base import Encoder, ModelSpec
from embedder.registry import ModelEntry, Registry

EFFICIENTNET = ("efficientnet-lite0", "0.1.0")
CONSE = ("conse-e5-efficientnet", "0.1.0")
EFFICIENTNET_DIM = 1280


def _effnet_files() -> tuple[Path, ...]:
    from embedder.models import efficientnet

    return efficientnet.weight_files()


def _build_effnet(spec: ModelSpec, registry: Registry) -> Encoder:
    from embedder.models.efficientnet import EfficientNetLite0Encoder

    return EfficientNetLite0Encoder(spec, threads=registry.threads)


def image_entries(text: ModelEntry) -> list[ModelEntry]:
    """EfficientNet-Lite0 (image to image) and ConSE over it in `text`'s space (text to image)."""
    effnet_ref, text_ref = "@".join(EFFICIENTNET), text.ref

    def conse_files() -> tuple[Path, ...]:
        from embedder.models import imagenet

        # The class names and definitions decide ConSE vectors as much as either model's weights do.
        return (*text.files(), *_effnet_files(), *imagenet.class_data_files())

    def build_conse(spec: ModelSpec, registry: Registry) -> Encoder:
        from embedder.models.conse import ConseEncoder

        cache = registry.cache_dir / "conse" if registry.cache_dir is not None else None
        return ConseEncoder(spec, registry.load(text_ref), registry.load(effnet_ref), cache_dir=cache)

    effnet = ModelEntry(*EFFICIENTNET, dim=EFFICIENTNET_DIM, modality="image", files=_effnet_files,
                        build=_build_effnet,
                        description="EfficientNet-Lite0 ImageNet features (pooled, 1280-d), for image-to-image")
    conse = ModelEntry(*CONSE, dim=384, modality="text+image", files=conse_files, build=build_conse,
                       description=f"ConSE: images as weighted ImageNet class-name embeddings in {text_ref}'s space; "
                                   "text queries find images", needs=(text_ref, effnet_ref))
    return [effnet, conse]


def clip_entry(item: dict, directory: Path) -> ModelEntry:
    """A CLIP model (transformers format) from a local directory: text and image in one space."""

    def files() -> tuple[Path, ...]:
        from embedder.models import clip_local

        return clip_local.weight_files(directory)

    def build(spec: ModelSpec, registry: Registry) -> Encoder:
        from embedder.models.clip_local import ClipEncoder

        return ClipEncoder(spec, directory, threads=registry.threads)

    return ModelEntry(item["name"], item["version"], int(item["dim"]), "text+image", files, build,
                      digest=item.get("digest", ""), description=item.get("description", "CLIP from a local directory"))
