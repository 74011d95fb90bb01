"""Fixtures shared by the shard_node unit tests."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from shard_node.settings import PartitionSpec
from shard_node.store import ShardStore


@pytest.fixture
def opened(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Callable[..., ShardStore]]:
    """Opens stores on tmp_path/shard with the test module's SPEC and settings(); closes every one at the end."""
    stores: list[ShardStore] = []
    module = request.module

    def open_store(spec: PartitionSpec | None = None, **kw: Any) -> ShardStore:
        store = ShardStore(tmp_path / "shard", spec or module.SPEC, module.settings(**kw))
        stores.append(store)
        return store

    yield open_store
    for s in stores:
        s.close()
