"""The search route's work, shared by the hot path that serves it and the FastAPI route that documents it."""

from __future__ import annotations

import time
from typing import Protocol

from gateway import conversions as cv
from gateway.clients import bearer_key
from shoal.client import Client


class Pool(Protocol):
    """Where the search finds the SDK client of a caller's key (gateway.clients.ClientPool)."""

    def for_key(self, api_key: str) -> Client:
        """The client that sends `api_key` to the coordinator."""


async def search_json(pool: Pool, name: str, body: cv.SearchBody, authorization: str) -> bytes:
    """The JSON answer (SearchOut) of one search: the SDK awaited on the event loop (no thread hop)."""
    args = cv.search_args(body)
    started = time.perf_counter()
    client = pool.for_key(bearer_key(authorization))
    hits, plan = await client.explain_async(name, explain=body.explain, allow_partial=body.allow_partial, **args)
    took = (time.perf_counter() - started) * 1000
    return cv.search_json(hits, hits.missing_shards, plan or None, took)
