"""SAM-like corruption of exact instance maps."""

import numpy as np
import pytest

from cgc_core.data.inconsistent import make_inconsistent_masks
from cgc_core.io import read_label_png

NO_CORRUPTION = dict(split_prob=0, merge_prob=0, jitter_prob=0, large_cut_prob=0, drop_prob=0,
                     gap_prob=0)


def blocks(h=60, w=80):
    """Background, a large 'table' (id 1) and four objects (ids 2..5) in a grid."""
    instances = np.zeros((h, w), np.int32)
    instances[20:, :] = 1
    for k, (r, c) in enumerate([(25, 5), (25, 45), (42, 5), (42, 45)]):
        instances[r:r + 14, c:c + 30] = k + 2
    return instances


def majority_label(segments, mask):
    values, counts = np.unique(segments[mask], return_counts=True)
    return values[np.argmax(counts)]


def test_without_corruption_it_is_a_random_relabelling():
    instances = blocks()
    a = make_inconsistent_masks(instances, np.random.default_rng(0), **NO_CORRUPTION)
    b = make_inconsistent_masks(instances, np.random.default_rng(1), **NO_CORRUPTION)
    assert a.dtype == np.int32 and a.shape == instances.shape
    for seg in (a, b):
        # A bijection between instance ids and segment ids, 1..K, nothing unlabelled.
        pairs = set(zip(instances.ravel().tolist(), seg.ravel().tolist()))
        assert len(pairs) == len(np.unique(instances)) == len(np.unique(seg))
        assert sorted(np.unique(seg)) == list(range(1, len(pairs) + 1))
    ids_a = [majority_label(a, instances == i) for i in range(6)]
    ids_b = [majority_label(b, instances == i) for i in range(6)]
    assert ids_a != ids_b  # ids mean nothing across views


def test_deterministic_under_the_generator():
    instances = blocks()
    a = make_inconsistent_masks(instances, np.random.default_rng(7))
    b = make_inconsistent_masks(instances, np.random.default_rng(7))
    c = make_inconsistent_masks(instances, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_each_corruption_does_what_it_says():
    instances = blocks()
    objects = [instances == i for i in range(2, 6)]
    split = make_inconsistent_masks(instances, np.random.default_rng(0),
                                    **{**NO_CORRUPTION, "split_prob": 1.0})
    assert all(len(np.unique(split[m])) == 2 for m in objects)
    merged = make_inconsistent_masks(instances, np.random.default_rng(0),
                                     **{**NO_CORRUPTION, "merge_prob": 1.0})
    assert len(np.unique(merged)) < len(np.unique(instances))
    cut = make_inconsistent_masks(instances, np.random.default_rng(0),
                                  **{**NO_CORRUPTION, "large_cut_prob": 1.0})
    assert len(np.unique(cut[instances == 1])) >= 2          # the table is in pieces
    assert all(len(np.unique(cut[m])) == 1 for m in objects)  # objects are not large surfaces
    gaps = make_inconsistent_masks(instances, np.random.default_rng(0),
                                   **{**NO_CORRUPTION, "gap_prob": 1.0})
    assert 0 < (gaps == 0).mean() < 0.2
    jitter = make_inconsistent_masks(instances, np.random.default_rng(0),
                                     **{**NO_CORRUPTION, "jitter_prob": 1.0, "jitter_px": 2})
    # Ids are shuffled, so compare each pixel with its instance's majority segment.
    majority = np.array([majority_label(jitter, instances == i) for i in range(6)])
    moved = jitter != majority[instances]
    assert 0 < moved.mean() < 0.3


def test_merging_with_objects_joins_neighbouring_objects_never_the_table():
    # The blocks' objects are 3 px apart vertically and 10 px horizontally.
    instances = blocks()
    objects = [instances == i for i in range(2, 6)]
    args = {**NO_CORRUPTION, "merge_prob": 1.0, "merge_with": "objects"}
    for seed in range(5):
        near = make_inconsistent_masks(instances, np.random.default_rng(seed), **args,
                                       merge_reach_px=4)
        main = [majority_label(near, m) for m in objects]
        assert len(set(main)) < 4  # some objects share a segment now
        assert majority_label(near, instances == 1) not in main  # none went into the table
        # Within 2 px no object has another object: nothing merges.
        far = make_inconsistent_masks(instances, np.random.default_rng(seed), **args)
        assert len({majority_label(far, m) for m in objects}) == 4
    with pytest.raises(ValueError, match="merge_with"):
        make_inconsistent_masks(instances, np.random.default_rng(0), merge_with="table")


def test_parts_kept_apart_stay_separate_segments():
    """Two touching parts of one object (ids 2 and 3) are never merged nor dropped."""
    instances = blocks()
    instances[25:39, 35:45] = 3  # make 3 touch 2: one object of two parts
    parts = [instances == 2, instances == 3]
    for seed in range(10):
        segments = make_inconsistent_masks(
            instances, np.random.default_rng(seed), merge_prob=1.0, drop_prob=1.0,
            keep_apart=[[2, 3]])
        # Each part keeps a labelled segment of its own (erosion and boundary gaps may still
        # unlabel its rim, and a large part may be cut into cells).
        main = [majority_label(segments, m & (segments > 0)) for m in parts]
        assert main[0] != main[1]
    # Without keep_apart, the same corruption drops them.
    segments = make_inconsistent_masks(instances, np.random.default_rng(0), drop_prob=1.0)
    assert not segments.any()


@pytest.mark.parametrize("seed", range(5))
def test_default_corruption_keeps_objects_mostly_covered(seed):
    instances = blocks()
    seg = make_inconsistent_masks(instances, np.random.default_rng(seed))
    coverage = [(seg[instances == i] > 0).mean() for i in range(2, 6)]
    assert np.mean(coverage) > 0.75
    assert (seg == 0).any()


def test_real_views_get_different_ids_for_the_same_object(synth_root):
    names = sorted(p.stem for p in (synth_root / "instances").glob("*.png"))
    differs = 0
    for a, b in zip(names, names[1:]):
        inst_a = read_label_png(synth_root / "instances" / f"{a}.png")
        inst_b = read_label_png(synth_root / "instances" / f"{b}.png")
        seg_a = read_label_png(synth_root / "masks_inconsistent" / f"{a}.png")
        seg_b = read_label_png(synth_root / "masks_inconsistent" / f"{b}.png")
        shared = set(np.unique(inst_a)) & set(np.unique(inst_b))
        labels_a = [majority_label(seg_a, inst_a == i) for i in shared]
        labels_b = [majority_label(seg_b, inst_b == i) for i in shared]
        differs += labels_a != labels_b
    assert differs >= len(names) - 2
