"""EfficientNet-Lite0 with its real packaged weights, on emoji drawn by the project's render script."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image

from bench.emoji_eval import render_emoji
from embedder.models import efficientnet as en
from embedder.models.base import BadImage, UnsupportedInput
from embedder.models.imagenet import imagenet_classes

CAT, DOG, ROCKET = "\U0001F431", "\U0001F436", "\U0001F680"           # CAT FACE, DOG FACE, ROCKET
TELEVISION, JOYSTICK, PRINTER = "\U0001F4FA", "\U0001F579", "\U0001F5A8"


@pytest.fixture(scope="module")
def encoder() -> en.EfficientNetLite0Encoder:
    return en.EfficientNetLite0Encoder(threads=2)


@pytest.fixture(scope="module")
def pets(encoder: en.EfficientNetLite0Encoder) -> np.ndarray:
    return encoder.embed_images(render_emoji([CAT, DOG, ROCKET]))


def _encode(img: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_features_are_unit_rows_of_1280(pets: np.ndarray) -> None:
    assert pets.shape == (3, 1280) and pets.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(pets, axis=1), 1.0, atol=1e-5)


def test_cat_is_nearer_dog_than_rocket(pets: np.ndarray) -> None:
    cat_dog, cat_rocket = float(pets[0] @ pets[1]), float(pets[0] @ pets[2])
    assert cat_dog > cat_rocket + 0.1, (cat_dog, cat_rocket)


def test_logits_name_the_object(encoder: en.EfficientNetLite0Encoder) -> None:
    names = [imagenet_classes()[top[0][0]].name for top in encoder.classify(render_emoji([TELEVISION, JOYSTICK,
                                                                                          PRINTER]))]
    assert names == ["television", "joystick", "printer"]


def test_probabilities_are_sorted_and_bounded(encoder: en.EfficientNetLite0Encoder) -> None:
    (top,) = encoder.classify(render_emoji([ROCKET]), top=5)
    probs = [p for _, p in top]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6


def test_jpeg_and_webp_match_png(encoder: en.EfficientNetLite0Encoder) -> None:
    (png,) = render_emoji([DOG])
    img = Image.open(io.BytesIO(png))
    vecs = encoder.embed_images([png, _encode(img, "JPEG"), _encode(img, "WEBP")])
    assert float(vecs[0] @ vecs[1]) > 0.95 and float(vecs[0] @ vecs[2]) > 0.95


def test_transparency_is_composited_on_white(encoder: en.EfficientNetLite0Encoder) -> None:
    clear = Image.new("RGBA", (64, 48), (200, 0, 0, 0))
    white = Image.new("RGB", (64, 48), "white")
    a, b = encoder.embed_images([_encode(clear, "PNG"), _encode(white, "PNG")])
    assert float(a @ b) > 0.9999


@pytest.mark.parametrize("data", [b"", b"not an image", b"\x89PNG\r\n\x1a\n" + b"\x00" * 40])
def test_undecodable_bytes_raise_bad_image(encoder: en.EfficientNetLite0Encoder, data: bytes) -> None:
    (good,) = render_emoji([CAT])
    with pytest.raises(BadImage, match="image 1"):
        encoder.embed_images([good, data])


def test_truncated_png_raises_bad_image(encoder: en.EfficientNetLite0Encoder) -> None:
    (good,) = render_emoji([CAT])
    with pytest.raises(BadImage):
        encoder.embed_images([good[: len(good) // 2]])


def test_other_formats_are_refused(encoder: en.EfficientNetLite0Encoder) -> None:
    gif = _encode(Image.new("RGB", (8, 8), "blue"), "GIF")
    with pytest.raises(BadImage, match="GIF"):
        encoder.embed_images([gif])


def test_no_images_gives_empty_matrix(encoder: en.EfficientNetLite0Encoder) -> None:
    assert encoder.embed_images([]).shape == (0, 1280)


def test_text_is_unsupported(encoder: en.EfficientNetLite0Encoder) -> None:
    with pytest.raises(UnsupportedInput):
        encoder.embed_texts(["cat"], "query")


def test_onnxruntime_and_torch_backends_agree(encoder: en.EfficientNetLite0Encoder) -> None:
    assert encoder.backend == "onnxruntime"
    images = render_emoji([CAT, ROCKET])
    fast, reference = encoder.run(images), en.EfficientNetLite0Encoder(threads=2, backend="torch").run(images)
    np.testing.assert_allclose(fast.features, reference.features, atol=1e-4)
    np.testing.assert_allclose(fast.logits, reference.logits, atol=1e-3)


def test_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="backend"):
        en.EfficientNetLite0Encoder(backend="tensorflow")


def test_folded_network_matches_the_checkpoint_as_loaded() -> None:
    reference = en.EfficientNetLite0()
    reference.load_state_dict(torch.load(en.packaged_weights(), weights_only=True), strict=True)
    folded = en.load_lite0(en.packaged_weights())
    x = torch.randn(2, 3, en.IMAGE_SIZE, en.IMAGE_SIZE, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        (f_ref, z_ref), (f, z) = reference.eval()(x), folded(x)
    torch.testing.assert_close(f, f_ref, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(z, z_ref, atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("change", ["drop", "extra"])
def test_checkpoint_keys_must_match_exactly(tmp_path, change: str) -> None:
    state = torch.load(en.packaged_weights(), weights_only=True)
    if change == "drop":
        state.pop("_fc.bias")
    else:
        state["_fc.extra"] = torch.zeros(1)
    path = tmp_path / "lite0.pth"
    torch.save(state, path)
    with pytest.raises(RuntimeError, match="_fc"):
        en.load_lite0(path)


def test_same_padding_matches_tensorflow_shapes() -> None:
    conv = en.SameConv2d(1, 1, 3, stride=2, bias=False)
    for size in (224, 225, 7):
        assert conv(torch.zeros(1, 1, size, size)).shape[-1] == -(-size // 2)
