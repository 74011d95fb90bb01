"""The 1,000 ImageNet-1k classes in model output order: WordNet synset ids, lemmas and definitions."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "imagenet"
SYNSETS_FILE = DATA_DIR / "imagenet_synsets.txt"
LEMMAS_FILE = DATA_DIR / "imagenet_synset_to_lemma.txt"
DEFINITIONS_FILE = DATA_DIR / "imagenet_synset_to_definition.txt"
N_CLASSES = 1000


@dataclass(frozen=True)
class ImageNetClass:
    """One output class: its synset id, its WordNet lemmas (most common first) and its gloss."""

    index: int
    synset: str
    lemmas: tuple[str, ...]
    definition: str

    @property
    def name(self) -> str:
        """The first lemma, the usual human-readable class name."""
        return self.lemmas[0]


def _read_tsv(path: Path) -> dict[str, str]:
    rows = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            key, value = line.split("\t", 1)
            rows[key] = value.strip()
    return rows


@cache
def imagenet_classes() -> tuple[ImageNetClass, ...]:
    """The 1,000 classes in the order ImageNet classifiers emit logits."""
    synsets = SYNSETS_FILE.read_text(encoding="utf-8").split()
    if len(synsets) != N_CLASSES:
        raise RuntimeError(f"{SYNSETS_FILE} lists {len(synsets)} synsets, expected {N_CLASSES}")
    lemmas, definitions = _read_tsv(LEMMAS_FILE), _read_tsv(DEFINITIONS_FILE)
    return tuple(
        ImageNetClass(i, s, tuple(w.strip() for w in lemmas[s].split(",") if w.strip()), definitions[s])
        for i, s in enumerate(synsets)
    )


def class_data_files() -> tuple[Path, ...]:
    """The files whose contents decide class names (digest them with any model that uses the names)."""
    return (SYNSETS_FILE, LEMMAS_FILE, DEFINITIONS_FILE)
