"""The C++ extension's tile size (kTile in csrc/raster_cpu.h) is the one project.py bins with."""

from __future__ import annotations

from cgc_core.render import project


def test_extension_tile_size_matches_project():
    from cgc_core.render import _raster_cpu

    assert project.TILE_SIZE == _raster_cpu.TILE_SIZE
