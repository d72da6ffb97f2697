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
from cgc_core.service import MapService, Query, QueryError, maps
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


def test_the_commands_work_on_a_map_the_service_saved(trained, capsys):
    # `cgc objects / label / extract / segment` on the node's ~/save_map folder: its keyframes
    # stand in for the scene, and a label given by the command is what the node loads.
    from cgc_core.app.cli import main

    service, _ = trained
    path = service.save("for_commands")
    capsys.readouterr()
    assert main(["objects", str(path), "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {o["id"] for o in listed} == {o.id for o in service.table.objects}
    object_id = listed[0]["id"]
    assert main(["label", str(path), str(object_id), "teapot"]) == 0
    other = service_for(service.settings.map_directory)
    other.load("for_commands")
    assert other.table.get(object_id).label == "teapot"
    other.session.stop()
    frame = other.session.keyframes[0].view.camera
    out = path / "teapot.ply"
    assert main(["extract", str(path), "--text", "teapot", "--out", str(out)]) == 0
    assert out.is_file()
    prompts = path / "prompts.json"
    prompts.write_text(json.dumps([{"id": "middle", "frame": frame.name,
                                    "point": [frame.width // 2, frame.height // 2]}]))
    assert main(["segment", str(path), "--prompts", str(prompts), "--out",
                 str(path / "masks")]) == 0
    assert (path / "masks" / "middle.png").is_file()
    assert main(["eval", str(path)]) != 0  # no ground truth in a node's map: refused
    assert "no test views" in capsys.readouterr().err


def test_the_service_loads_a_cgc_train_run(tiny_scene, tmp_path):
    from cgc_core.app.run_folder import train_scene

    config = apply_overrides(tiny_config(), {"train": {"iterations": 15}})
    run = train_scene(tiny_scene, tmp_path / "trained", config=config,
                      masks_dir=tiny_scene / "masks_inconsistent", progress=False,
                      log=lambda _: None)
    service = service_for(tmp_path)
    assert service.load("trained") == (tmp_path / "trained").resolve()
    assert torch.equal(service.clustered_splats["means"], run.splats["means"].detach())
    assert service.table is not None  # clustered as loaded, before training resumes
    service.session.stop()


def test_objects_are_announced_once_and_a_loaded_maps_objects_are_not_news(trained):
    service, _ = trained
    service.take_events()
    for _ in range(service.tracker.settle_updates):  # reclustering the same model
        service._generation += 1
        service._clustered_version = -1
        service.recluster()
    appeared = [e for e in service.take_events() if e.kind == "appeared"]
    listed = {o.id for o in service.table.objects if not o.background}
    # (the session trains in its thread since an earlier test saved it: objects come and go)
    assert appeared and {e.id for e in appeared} & listed
    assert len(appeared) == len({e.id for e in appeared})
    service.recluster()
    assert [e for e in service.take_events() if e.kind == "appeared" and
            e.id in {a.id for a in appeared}] == []
    assert service.status(DropOldestQueue(3))["session"]["removals"] == 0
    service.save("events")
    other = service_for(service.settings.map_directory)
    other.load("events")
    other.recluster()
    assert other.take_events() == []
    other.session.stop()
