"""Wiring of the local-directory CLIP encoder, with a tiny randomly initialised CLIP saved to a temp dir.

Random weights prove the plumbing (files, tokenizer, image preprocessing, projection, normalisation),
not retrieval quality.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers
from PIL import Image

from embedder.models import clip_local
from embedder.models.base import BadImage, ModelSpec

PROJECTION = 16
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def _save_tiny_clip(directory: Path) -> None:
    """A 2-layer CLIP over a letters-only BPE vocabulary, saved as transformers would save a real one."""
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1}
    for token in [*LETTERS, *(c + "</w>" for c in LETTERS)]:
        vocab[token] = len(vocab)
    directory.mkdir(parents=True)
    (directory / "vocab.json").write_text(json.dumps(vocab))
    (directory / "merges.txt").write_text("#version: 0.2\n")
    tokenizer = transformers.CLIPTokenizer(str(directory / "vocab.json"), str(directory / "merges.txt"))
    tower = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2}
    config = transformers.CLIPConfig(
        text_config={**tower, "vocab_size": len(vocab), "max_position_embeddings": 24,
                     "bos_token_id": 0, "eos_token_id": 1, "pad_token_id": 1},
        vision_config={**tower, "image_size": 32, "patch_size": 8},
        projection_dim=PROJECTION,
    )
    torch.manual_seed(0)
    transformers.CLIPModel(config).save_pretrained(str(directory))
    image_processor = transformers.CLIPImageProcessor(size={"shortest_edge": 32},
                                                      crop_size={"height": 32, "width": 32})
    transformers.CLIPProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(str(directory))


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("clip") / "tiny-clip"
    _save_tiny_clip(directory)
    return directory


@pytest.fixture(scope="module")
def spec(tiny_dir: Path) -> ModelSpec:
    return ModelSpec("tiny-clip", "0", PROJECTION, "text+image", clip_local.weight_files(tiny_dir))


@pytest.fixture(scope="module")
def encoder(spec: ModelSpec, tiny_dir: Path) -> clip_local.ClipEncoder:
    return clip_local.ClipEncoder(spec, tiny_dir, threads=1)


def _png(colour: str, size: tuple[int, int] = (50, 40)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


def test_text_and_images_share_one_normalised_space(encoder: clip_local.ClipEncoder) -> None:
    texts = encoder.embed_texts(["a cat", "a rocket", "dog"], "query")
    images = encoder.embed_images([_png("red"), _png("blue", (20, 90))])
    assert texts.shape == (3, PROJECTION) and images.shape == (2, PROJECTION)
    assert texts.dtype == images.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(np.vstack([texts, images]), axis=1), 1.0, atol=1e-5)
    assert not np.allclose(texts[0], texts[1]) and not np.allclose(images[0], images[1])


def test_vectors_are_deterministic_and_batch_independent(encoder: clip_local.ClipEncoder) -> None:
    together = encoder.embed_texts(["a cat", "a much longer text about rockets"], "passage")
    alone = encoder.embed_texts(["a cat"], "query")
    np.testing.assert_allclose(together[0], alone[0], atol=1e-5)
    np.testing.assert_allclose(encoder.embed_images([_png("red")]), encoder.embed_images([_png("red")]), atol=1e-6)


def test_a_reloaded_directory_gives_the_same_vectors(encoder: clip_local.ClipEncoder, spec: ModelSpec,
                                                     tiny_dir: Path) -> None:
    again = clip_local.ClipEncoder(spec, tiny_dir)
    np.testing.assert_allclose(again.embed_texts(["a cat"], "query"), encoder.embed_texts(["a cat"], "query"),
                               atol=1e-6)


def test_long_text_is_truncated_not_refused(encoder: clip_local.ClipEncoder) -> None:
    assert encoder.embed_texts(["word " * 200], "passage").shape == (1, PROJECTION)


def test_bad_image_bytes_raise_bad_image(encoder: clip_local.ClipEncoder) -> None:
    with pytest.raises(BadImage, match="image 1"):
        encoder.embed_images([_png("red"), b"garbage"])


def test_weight_files_cover_weights_config_and_tokenizer(tiny_dir: Path) -> None:
    names = {p.name for p in clip_local.weight_files(tiny_dir)}
    assert {"model.safetensors", "config.json"} <= names and names & {"tokenizer.json", "vocab.json"}


def test_missing_directory_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist.*no model hub"):
        clip_local.weight_files(tmp_path / "nowhere")


def test_incomplete_directory_names_what_is_missing(tmp_path: Path, tiny_dir: Path) -> None:
    partial = tmp_path / "partial"
    partial.mkdir()
    (partial / "config.json").write_text((tiny_dir / "config.json").read_text())
    with pytest.raises(FileNotFoundError, match="missing weights.*tokenizer.*image preprocessing"):
        clip_local.ClipEncoder(ModelSpec("partial", "0", PROJECTION, "text+image"), partial)


def test_dimension_mismatch_with_the_registry_is_refused(tiny_dir: Path) -> None:
    with pytest.raises(ValueError, match="projects to 16"):
        clip_local.ClipEncoder(ModelSpec("tiny-clip", "0", 512, "text+image"), tiny_dir)
