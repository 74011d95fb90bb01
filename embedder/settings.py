"""Settings of the embedder service, from flags and SHOAL_* environment."""

from __future__ import annotations

from dataclasses import dataclass, field

from protos.tls import ServerTLSSettings

DEFAULT_PORT = 50061
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_ITEMS = 4096            # most texts or images in one request
MAX_TEXT_CHARS = 100_000    # longer texts are refused: chunk them before embedding
MAX_IMAGE_BYTES = 20 * 1024 * 1024


@dataclass(frozen=True)
class EmbedderSettings(ServerTLSSettings):
    """Embedder settings."""

    host: str = field(default="127.0.0.1", metadata={"help": "address the gRPC server binds"})
    port: int = field(default=DEFAULT_PORT, metadata={"help": "port of the gRPC server (0 = any)"})
    default_model: str = field(default="multilingual-e5-small@1.2.0", metadata={
        "help": "model used when a request names none"})
    models_file: str = field(default="", metadata={
        "help": "JSON list of extra models from local directories (see README, 'Models')"})
    state_dir: str = field(default=".shoal-data/embedder", metadata={
        "help": "where digests of models without a pinned digest are recorded on first load"})
    preload: str = field(default="", metadata={"help": "comma-separated models to load at start (default: default)"})
    threads: int = field(default=0, metadata={
        "help": "threads per model (0 = the library's choice; for the ONNX multilingual-e5-small builds, one per CPU "
                "the embedder may run on, each running whole length buckets)"})
    max_batch_items: int = field(default=64, metadata={"help": "most items encoded together in one batch"})
    # 0: continuous batching. An idle encoder starts on a request at once, and the requests that arrive while it
    # runs form the next batch, so a lone query never waits and a loaded embedder still encodes full batches.
    max_wait_ms: float = field(default=0.0, metadata={
        "help": "how long the first request of a batch waits for others to join (0 = none: batches form from "
                "what queued while the encoder was busy)"})
    max_items: int = field(default=MAX_ITEMS, metadata={"help": "most texts or images per request"})
    max_text_chars: int = field(default=MAX_TEXT_CHARS, metadata={"help": "longest text accepted"})
    max_image_bytes: int = field(default=MAX_IMAGE_BYTES, metadata={"help": "largest image accepted"})
    max_message_bytes: int = field(default=DEFAULT_MAX_MESSAGE_BYTES, metadata={
        "help": "largest gRPC message accepted or sent"})
    metrics_port: int = field(default=-1, metadata={"help": "Prometheus metrics port (0 = any free, -1 = off)"})
