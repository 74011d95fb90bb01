"""The image demo collection `make run` creates: the emoji images of data/emoji/, bound to the image model.

data/emoji/make_emoji_images.py renders the 1,151 single-code-point emoji of Debian's Noto Color Emoji
font into .cache/emoji/ (rendered here when missing). Each image is embedded by the coordinator with
EfficientNet-Lite0 (image to image: an uploaded picture finds emoji that look like it), with the
emoji's Unicode name, code point and file as payload; `thumbnail` is where the gateway serves the file
(`--media emoji=.cache/emoji`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tqdm import tqdm

from shoal.client import Client

EMOJI_COLLECTION = "emoji"
EMOJI_MODEL = "efficientnet-lite0@0.1.0"
EMOJI_SHARDS = 2
EMOJI_FIELDS = {"name": "text", "codepoint": "keyword"}
BATCH = 32                # images per upsert: each is embedded, so keep batches small for the progress bar
MEDIA_NAME = "emoji"      # the gateway serves the images under /media/emoji/
ROOT = Path(__file__).resolve().parent.parent
RENDERER = ROOT / "data" / "emoji" / "make_emoji_images.py"
IMAGES_DIR = ROOT / ".cache" / "emoji"


def ensure_images(images_dir: Path = IMAGES_DIR) -> Path:
    """Render the emoji images into images_dir unless its labels.jsonl is there; returns that file."""
    labels = images_dir / "labels.jsonl"
    if not labels.is_file():
        subprocess.run([sys.executable, str(RENDERER), str(images_dir)], check=True)
    return labels


def read_labels(images_dir: Path = IMAGES_DIR) -> list[dict[str, Any]]:
    """The rendered images' labels ({"file", "name", "codepoint"}), in file order."""
    with open(ensure_images(images_dir), encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def payload_of(label: dict[str, Any]) -> dict[str, Any]:
    """What an emoji stores: its name, code point, file and the gateway's URL of its image."""
    return {"name": label["name"], "codepoint": label["codepoint"], "file": label["file"],
            "thumbnail": f"/media/{MEDIA_NAME}/{label['file']}"}


def load_emoji_demo(client: Client, images_dir: Path = IMAGES_DIR, limit: int | None = None,
                    progress: bool = True) -> int:
    """Create and fill the emoji collection unless it already holds documents; returns its size.

    `limit` keeps only the first N images (tests: embedding all of them takes a while on two cores)."""
    if any(c.name == EMOJI_COLLECTION for c in client.list_collections()):
        count = client.count(EMOJI_COLLECTION)
        if count > 0:
            return count
    else:
        client.create_collection(EMOJI_COLLECTION, model=EMOJI_MODEL, shards=EMOJI_SHARDS, fields=EMOJI_FIELDS)
    labels = read_labels(images_dir)[:limit]
    bar = tqdm(total=len(labels), unit="img", desc=f"embedding {EMOJI_COLLECTION!r} images with {EMOJI_MODEL}",
               disable=not progress)
    for start in range(0, len(labels), BATCH):
        batch = labels[start:start + BATCH]
        client.upsert(EMOJI_COLLECTION, [b["codepoint"] for b in batch], payloads=[payload_of(b) for b in batch],
                      images=[(images_dir / b["file"]).read_bytes() for b in batch])
        bar.update(len(batch))
    bar.close()
    return client.count(EMOJI_COLLECTION)
