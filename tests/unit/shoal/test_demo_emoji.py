"""The emoji demo's payloads and its image folder (rendered only when missing)."""

from __future__ import annotations

import json
from pathlib import Path

from shoal.demo_emoji import MEDIA_NAME, payload_of, read_labels


def test_payload_names_the_emoji_and_where_the_gateway_serves_it() -> None:
    label = {"file": "CAT_FACE.png", "name": "cat face", "codepoint": "U+1F431"}
    assert payload_of(label) == {"name": "cat face", "codepoint": "U+1F431", "file": "CAT_FACE.png",
                                 "thumbnail": f"/media/{MEDIA_NAME}/CAT_FACE.png"}


def test_existing_labels_are_read_without_rendering(tmp_path: Path) -> None:
    rows = [{"file": "A.png", "name": "a", "codepoint": "U+1F300"},
            {"file": "B.png", "name": "b", "codepoint": "U+1F301"}]
    (tmp_path / "labels.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + "\n")
    assert read_labels(tmp_path) == rows
    assert sorted(p.name for p in tmp_path.iterdir()) == ["labels.jsonl"]  # nothing rendered


def test_a_missing_folder_is_rendered(tmp_path: Path) -> None:
    labels = read_labels(tmp_path / "emoji")
    assert len(labels) > 1000 and labels[0]["codepoint"].startswith("U+1F3")
    assert all((tmp_path / "emoji" / label["file"]).is_file() for label in labels)
