"""The collection catalogue: add/get/remove, persistence, errors and name validation."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from coordinator.catalog import Catalog, CollectionSpec, valid_name
from protos.errors import AlreadyExists, NotFound


def spec(name: str, dim: int = 8, metric: str = "cosine", shards: int = 2) -> CollectionSpec:
    """A new collection spec with fixed HNSW parameters."""
    return CollectionSpec.new(name, dim=dim, metric=metric, shards=shards, m=16, ef_construction=200, ef_search=64)


def test_new_spec_fields() -> None:
    a, b = spec("a"), spec("a")
    assert a.uid != b.uid and len(a.uid) == 12
    assert a.created_at.endswith("Z") and len(a.created_at) == len("2024-01-01T00:00:00Z")
    fields = (a.name, a.dim, a.metric, a.shards, a.m, a.ef_construction, a.ef_search)
    assert fields == ("a", 8, "cosine", 2, 16, 200, 64)


def test_add_get_remove(tmp_path: Path) -> None:
    cat = Catalog(tmp_path)
    assert cat.all() == []
    a, b = spec("beta", dim=3), spec("alpha", metric="l2", shards=4)
    cat.add(a)
    cat.add(b)
    assert cat.get("beta") == a
    assert cat.get("alpha") == b
    assert [s.name for s in cat.all()] == ["alpha", "beta"]
    assert cat.remove("beta") == a
    assert [s.name for s in cat.all()] == ["alpha"]
    with pytest.raises(NotFound):
        cat.get("beta")


def test_persistence_across_instances(tmp_path: Path) -> None:
    a, b, c = spec("one"), replace(spec("two", dim=128, metric="ip"), storage="binary"), spec("three")
    cat = Catalog(tmp_path / "coord")
    for s in (a, b, c):
        cat.add(s)
    cat.remove("three")
    again = Catalog(tmp_path / "coord")
    assert again.all() == [a, b]
    assert again.get("two") == b and again.get("two").storage == "binary"
    with pytest.raises(NotFound):
        again.get("three")
    again.add(spec("three"))
    assert [s.name for s in Catalog(tmp_path / "coord").all()] == ["one", "three", "two"]
    assert sorted(p.name for p in (tmp_path / "coord").iterdir()) == ["catalog.json"], "no temp file left"


def test_already_exists(tmp_path: Path) -> None:
    cat = Catalog(tmp_path)
    first = spec("dup")
    cat.add(first)
    with pytest.raises(AlreadyExists, match="dup"):
        cat.add(spec("dup", dim=4))
    assert cat.get("dup") == first
    assert Catalog(tmp_path).get("dup") == first


def test_not_found_names_known_collections(tmp_path: Path) -> None:
    cat = Catalog(tmp_path)
    with pytest.raises(NotFound, match="none"):
        cat.get("ghost")
    cat.add(spec("real"))
    with pytest.raises(NotFound, match="real"):
        cat.remove("ghost")
    assert [s.name for s in Catalog(tmp_path).all()] == ["real"]


@pytest.mark.parametrize("name", ["a", "A9", "_x", "0", "my-coll.v2", "under_score", "x" * 128, "a-", "a."])
def test_valid_names(name: str) -> None:
    assert valid_name(name)


@pytest.mark.parametrize("name", ["", ".hidden", "-dash", "x" * 129, "has space", "a/b", "../up", "é", "a:b",
                                  "name\n", "\nname", "tab\t", "a\x00"])
def test_invalid_names(name: str) -> None:
    assert not valid_name(name)
