"""The C++ extension's tile size (kTile in csrc/raster_cpu.h) is the one project.py bins with."""

from __future__ import annotations

import pytest

from cgc_core.render import cpu, project

needs_extension = pytest.mark.skipif(
    not cpu.is_available(), reason="the C++ extension _raster_cpu is not built (scripts/setup.sh)"
)


@needs_extension
def test_extension_tile_size_matches_project():
    from cgc_core.render import _raster_cpu

    assert project.TILE_SIZE == _raster_cpu.TILE_SIZE
