"""Fuzz: a damaged mask PNG gives an int64 class-id array or a one-line `InputError`, never another exception."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from tests.fuzz_settings import expect_zoo_errors, fuzz, memory_peak
from zoo.evaluate.segmentation import read_mask


def _png() -> bytes:
    mask = Image.fromarray((np.arange(24 * 16) % 21).reshape(16, 24).astype(np.uint8)).convert("P")
    mask.putpalette([v for i in range(256) for v in (i, 255 - i, i // 2)])
    out = io.BytesIO()
    mask.save(out, format="PNG")
    return out.getvalue()


VALID = _png()


@fuzz(200)
@given(
    edits=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)), max_size=8),
    cut=st.integers(0, len(VALID)),
)
def test_damaged_mask_pngs(edits: list[tuple[int, int]], cut: int, tmp_path: Path) -> None:
    data = bytearray(VALID)
    for where, value in edits:
        data[where] = value
    path = tmp_path / "mask.png"
    path.write_bytes(bytes(data[:cut] if cut > 8 else data))
    with memory_peak():
        found = expect_zoo_errors(lambda: read_mask(path))
    if found is not None:
        assert found.dtype == np.int64 and found.ndim == 2
