"""chunk_text: word windows with overlap, checked on edge cases and as properties."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from coordinator.chunking import chunk_text


def words(n: int) -> str:
    """w0 w1 ... w(n-1)."""
    return " ".join(f"w{i}" for i in range(n))


def test_short_text_is_one_chunk_unchanged() -> None:
    text = "  a short\ttext\nwith  odd spacing "
    assert chunk_text(text, 10, 2) == [text]
    assert chunk_text(words(10), 10, 2) == [words(10)]


def test_windows_and_overlap() -> None:
    assert chunk_text(words(10), 4, 1) == ["w0 w1 w2 w3", "w3 w4 w5 w6", "w6 w7 w8 w9"]
    assert chunk_text(words(11), 4, 1) == ["w0 w1 w2 w3", "w3 w4 w5 w6", "w6 w7 w8 w9", "w9 w10"]


def test_no_overlap_partitions_the_words() -> None:
    assert chunk_text(words(7), 3, 0) == ["w0 w1 w2", "w3 w4 w5", "w6"]


def test_last_window_ends_at_the_last_word_without_a_redundant_tail() -> None:
    # 8 words, windows of 5 stepping 3: [0..4], [3..7]; a third window [6..7] would add nothing.
    assert chunk_text(words(8), 5, 2) == ["w0 w1 w2 w3 w4", "w3 w4 w5 w6 w7"]


def test_one_word_windows() -> None:
    assert chunk_text("a b c", 1, 0) == ["a", "b", "c"]


@settings(max_examples=200, deadline=None)
@given(n=st.integers(0, 300), size=st.integers(1, 40), data=st.data())
def test_chunk_properties(n: int, size: int, data: st.DataObject) -> None:
    overlap = data.draw(st.integers(0, size - 1), label="overlap")
    tokens = [f"t{i}" for i in range(n)]
    chunks = chunk_text(" ".join(tokens), size, overlap)
    assert chunks, "at least one chunk"
    windows = [c.split() for c in chunks]
    assert all(len(w) <= size for w in windows)
    if n <= size:
        assert len(chunks) == 1
        return
    # Every word appears in some chunk, in order: the windows are consecutive slices stepping size - overlap.
    step = size - overlap
    for j, w in enumerate(windows):
        assert w == tokens[j * step:j * step + size]
    assert windows[-1][-1] == tokens[-1]
    assert {t for w in windows for t in w} == set(tokens)
    # Consecutive windows share exactly `overlap` words; only the last may be short.
    if overlap:
        for a, b in zip(windows, windows[1:], strict=False):
            assert a[-overlap:] == b[:overlap]
    assert all(len(w) == size for w in windows[:-1])
    # No window is wholly inside the previous one (no redundant tail).
    assert len(windows) == 1 + -(-(n - size) // step)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_blank_text_is_one_chunk(text: str) -> None:
    assert chunk_text(text, 5, 1) == [text]
