"""One query's answer as columns (ids, scores, distances, payloads): the form the nodes send and the SDK reads.

A plain vector search over an unchunked collection goes from the merged node columns to these columns with
no per-hit object; rankings and chunk grouping that need per-hit logic build `Hit`s and convert at the end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from coordinator.grouping import Hit
from protos import common_pb2


@dataclass
class HitColumns:
    """One query's hits, best first."""

    ids: list[str]
    scores: np.ndarray                                  # float32
    distances: np.ndarray                               # float32
    payloads: list[common_pb2.Payload | None] | None    # None when payloads were not asked for

    @classmethod
    def of(cls, hits: list[Hit], with_payload: bool) -> HitColumns:
        """Columns of per-hit results."""
        return cls([h.id for h in hits], np.fromiter((h.score for h in hits), np.float32, len(hits)),
                   np.fromiter((h.distance for h in hits), np.float32, len(hits)),
                   [h.payload for h in hits] if with_payload else None)

    def __len__(self) -> int:
        return len(self.ids)

    def hits(self) -> list[Hit]:
        """The same results as per-hit objects (for callers that walk hits one by one)."""
        payloads = self.payloads if self.payloads is not None else [None] * len(self.ids)
        return [Hit(i, s, d, p) for i, s, d, p in zip(self.ids, self.scores.tolist(), self.distances.tolist(),
                                                      payloads, strict=True)]
