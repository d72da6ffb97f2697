"""The map service without ROS: request validation, a query on a tiny trained map, labels, and
the map folder's save -> load round trip (both directions with `cgc train`'s run folder)."""

import collections
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from cgc_core.config import CGCConfig, apply_overrides
from cgc_core.data import load_scene
from cgc_core.io import read_label_png
from cgc_core.service import MapService, Query, QueryError
from cgc_core.service import maps
from cgc_core.service.buffers import DropOldestQueue, StampBuffer
from cgc_core.service.frames import FrameInputs
from cgc_core.service.settings import NodeSettings, node_parameters


def tiny_config() -> CGCConfig:
    return apply_overrides(CGCConfig(), {
        "model": {"sh_degree": 1},
        "loss": {"clustering_every": 5, "regularization_every": 0, "min_cluster_pixels": 20},
        "train": {"iterations": 60, "max_resolution": 0, "densify_from": 10,
                  "densify_every": 10, "opacity_reset_every": 0, "device": "cpu"},
        "live": {"grow_points": 300},
        "objects": {"min_gaussians": 5},
    })


def service_for(map_directory: Path, config: CGCConfig | None = None) -> MapService:
    values = {p.name: p.default for p in node_parameters()}
    values.update(pose_source="topic", external_segments=True, map_directory=map_directory)
    inputs = FrameInputs(frames=DropOldestQueue(4), camera_info=StampBuffer(),
                         depth=StampBuffer(), pose=StampBuffer(), segments=StampBuffer())
    return MapService(config or tiny_config(), NodeSettings(**values), inputs, lambda _: None)


@pytest.fixture(scope="module")
def trained(tiny_scene, tmp_path_factory):
    """A service whose session trained 60 iterations on the tiny scene's frames (not started:
    no threads), clustered."""
    service = service_for(tmp_path_factory.mktemp("maps"))
    scene = load_scene(tiny_scene)
    for i, name in enumerate(scene.train_names):
        cam = scene.camera(name)
        segments = read_label_png(tiny_scene / "masks_inconsistent" / f"{name}.png")
        service.session.add_frame(cam, scene.load_image(cam), scene.load_depth(cam), segments,
                                  stamp=1.0 + i)
    service.session.train(60)
    service.recluster()
    yield service, scene
    service.session.stop()  # save() resumes training in its thread


def test_requests_before_any_keyframe_say_there_is_no_map_yet(tmp_path):
    service = service_for(tmp_path)
    for ask in (lambda: service.segment_object(Query(use_pixel=True, u=1, v=1)),
                lambda: service.list_objects(recluster=False),
                lambda: service.label(1, "mug"), lambda: service.save("first")):
        with pytest.raises(QueryError, match="no map yet"):
            ask()


@pytest.mark.parametrize("threshold", [-0.1, 1.5, float("nan")])
def test_thresholds_outside_0_1_are_refused_and_0_means_the_configured_pair(tmp_path, threshold):
    service = service_for(tmp_path)
    with pytest.raises(QueryError, match="threshold must lie"):
        service.thresholds(threshold)
    query = service.config.query
    assert service.thresholds(0.0) == (query.threshold, query.selection_threshold)
    assert service.thresholds(0.8) == (0.8, 0.8)


@pytest.mark.parametrize("name, why", [("", "1 to 256"), ("../up", "without '..'"),
                                       ("/abs", "without '..'"), ("a/..", "without '..'"),
                                       (".", "map directory itself"), ("x" * 300, "1 to 256")])
def test_map_names_are_confined_to_the_map_directory(tmp_path, name, why):
    with pytest.raises(QueryError, match=why.replace(".", r"\.").replace("(", r"\(")):
        maps.map_path(tmp_path, name)
    (tmp_path / "link").symlink_to(tmp_path.parent)
    with pytest.raises(QueryError, match="leads out"):
        maps.map_path(tmp_path, "link/x")


def test_a_pixel_query_selects_gaussians_and_masks_the_pixel_it_was_given(trained):
    service, scene = trained
    service._served = None  # no background copy: the session's own snapshot
    camera = scene.camera(scene.train_names[0])
    u, v = camera.width // 2, camera.height // 2
    answer = service.segment_object(Query(use_pixel=True, u=u, v=v, camera=camera))
    assert answer.mask.shape == (camera.height, camera.width) and answer.mask[v, u]
    assert answer.selection.summary["count"] == int(answer.selection.selected.sum()) > 0
    assert answer.selection.points.shape == (answer.selection.summary["count"], 3)
    assert answer.object is not None  # the nearest object of the table
    with pytest.raises(QueryError, match="outside"):
        service.segment_object(Query(use_pixel=True, u=camera.width, v=0, camera=camera))
    with pytest.raises(QueryError, match="limited to 2048"):
        service.segment_object(Query(use_pixel=True, camera=camera.scaled(40.0)))


def test_text_queries_are_validated_and_a_label_is_found_again(trained):
    service, _ = trained
    for text, why in (("  ", "empty text"), ("x" * 300, "longer than 256")):
        with pytest.raises(QueryError, match=why):
            service.segment_object(Query(use_pixel=False, text=text))
    obj = service.list_objects(recluster=False)[0]
    service.label(obj.id, " the 124 ")
    answer = service.segment_object(Query(use_pixel=False, text="the 124"))
    assert answer.object.id == obj.id and answer.selection.summary["count"] > 0
    with pytest.raises(QueryError, match="unknown|no object"):
        service.label(10_000, "ghost")


def test_save_then_load_gives_the_same_model_ids_and_labels(trained, tmp_path):
    service, _ = trained
    obj = service.list_objects(recluster=False)[0]
    service.label(obj.id, "kept")
    path = service.save("kitchen")
    assert (path / maps.CHECKPOINT_FILE).is_file() and (path / maps.OBJECTS_FILE).is_file()
    before = {o.id: o.label for o in service.table.objects}
    saved = service.clustered_splats["means"]  # save clusters the model as it writes it
    other = service_for(service.settings.map_directory)
    other.load("kitchen")  # load clusters the model as read, before training resumes
    assert torch.equal(other.clustered_splats["means"], saved)
    assert {o.id: o.label for o in other.table.objects} == before
    other.session.stop()


def test_a_map_saved_by_the_node_before_the_one_format_still_loads(trained):
    service, _ = trained
    path = service.save("old")
    (path / maps.CHECKPOINT_FILE).rename(path / maps.LEGACY_SESSION_FILE)
    other = service_for(service.settings.map_directory)
    assert other.load("old") == path and other.table is not None
    other.session.stop()


def test_a_folder_that_is_no_map_is_refused_with_one_line_and_the_map_kept(trained):
    service, _ = trained
    root = service.settings.map_directory
    (root / "empty").mkdir()
    with pytest.raises(QueryError, match="no saved map 'empty'"):
        service.load("empty")
    (root / "junk").mkdir()
    (root / "junk" / maps.CHECKPOINT_FILE).write_bytes(b"not a checkpoint")
    table = service.table
    with pytest.raises(QueryError) as refused:
        service.load("junk")
    assert "\n" not in str(refused.value) and "current map is kept" in str(refused.value)
    assert service.table is table


def test_status_counts_requests_and_session_figures(trained):
    service, _ = trained
    status = service.status(DropOldestQueue(3))
    assert status["queue_bound"] == service.settings.queue_length
    assert status["session"]["step"] >= 60 and status["objects"] == len(service.table.objects)
    json.dumps(status)  # what ~/status publishes
    assert isinstance(service.counts, collections.Counter)
    assert np.isfinite(status["session"]["iterations_per_second"])
