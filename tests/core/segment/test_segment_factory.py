"""`make_mask_source`: which source a config gives, and config errors."""

import pytest

from cgc_core.config import SegmenterConfig
from cgc_core.segment import (
    FelzenszwalbMaskSource,
    MaskSource,
    PrecomputedMaskSource,
    make_mask_source,
    resolve_kind,
)


def test_auto_without_checkpoint_is_the_fallback():
    source = make_mask_source(SegmenterConfig())
    assert isinstance(source, FelzenszwalbMaskSource) and isinstance(source, MaskSource)
    assert resolve_kind(SegmenterConfig(sam_checkpoint="/x.pth")) == "sam"


def test_explicit_kinds(tmp_path):
    assert isinstance(make_mask_source(SegmenterConfig(kind="felzenszwalb", sam_checkpoint="x")),
                      FelzenszwalbMaskSource)
    source = make_mask_source(SegmenterConfig(kind="precomputed", masks_dir=str(tmp_path)))
    assert isinstance(source, PrecomputedMaskSource)
    assert source.path_for("frame_3") == tmp_path / "frame_3.png"


@pytest.mark.parametrize("config, message", [
    (SegmenterConfig(kind="slic"), "unknown segmenter.kind 'slic'"),
    (SegmenterConfig(kind="sam"), "needs segmenter.sam_checkpoint"),
    (SegmenterConfig(kind="precomputed"), "needs segmenter.masks_dir"),
])
def test_config_errors(config, message):
    with pytest.raises(ValueError, match=message):
        make_mask_source(config)
