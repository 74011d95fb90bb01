"""Gateway settings: flags beat SHOAL_GATEWAY_* environment beats defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import DEFAULT_PORT, load


def test_defaults() -> None:
    s = load([], env={})
    assert (s.host, s.port, s.coordinator) == ("127.0.0.1", DEFAULT_PORT, "127.0.0.1:50051")


def test_environment_then_flags() -> None:
    env = {"SHOAL_GATEWAY_PORT": "9000", "SHOAL_GATEWAY_MAX_BODY_BYTES": "123", "SHOAL_PORT": "1"}
    s = load([], env=env)
    assert (s.port, s.max_body_bytes) == (9000, 123)
    assert load(["--port=9100"], env=env).port == 9100


def test_media_folders(tmp_path: Path) -> None:
    s = load([f"--media=emoji={tmp_path}, other=rel"], env={})
    assert s.media_dirs() == {"emoji": tmp_path.resolve(), "other": Path("rel").resolve()}
    with pytest.raises(SystemExit, match="not NAME=DIR"):
        load(["--media=emoji"], env={}).media_dirs()
