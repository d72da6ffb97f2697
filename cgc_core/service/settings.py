"""The settings of the map service that a face sets: frame matching, queues, rates and paths.

The node declares each of these as a ROS parameter (`cgc_ros.params`) with the description and
range given here, beside every engine setting of `cgc_core.config` under its dotted name; the
service reads them as a checked `NodeSettings`. They are data, not ROS: one home for their
defaults and descriptions, whatever face starts the service.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def tf_available() -> bool:
    """tf2_ros is not on PyPI (DESIGN.md): on a ROS 2 install it is, in a bare venv it is not."""
    return importlib.util.find_spec("tf2_ros") is not None


@dataclass(frozen=True)
class NodeParameter:
    name: str
    default: Any
    description: str
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] | None = None


def node_parameters() -> list[NodeParameter]:
    """The node's own parameters, with their defaults, descriptions and ranges."""
    return [
        NodeParameter("map_frame", "map", "Fixed frame of the map: poses are looked up in it and "
                      "the clusters, markers and object clouds are published in it."),
        NodeParameter("pose_source", "tf" if tf_available() else "topic",
                      "Where the camera pose comes from: 'tf' (map_frame <- the image's frame_id, "
                      "at the image's stamp) or 'topic' (geometry_msgs/PoseStamped of the optical "
                      "frame in map_frame on `pose`). Default: 'tf' when tf2_ros is importable.",
                      choices=("tf", "topic")),
        NodeParameter("external_segments", False,
                      "True: segment ids come on `segments` (mono16 / 32SC1, the image's stamp) "
                      "from an external segmenter, and the node's own mask source stays idle."),
        NodeParameter("sync_slop", 0.05, "Seconds two messages' stamps may differ and still "
                      "belong to one frame (image, camera_info, depth, pose, segments).",
                      range=(0.0, 5.0)),
        NodeParameter("sync_wait", 0.5, "Seconds the worker waits for a frame's camera_info, "
                      "pose, depth and segments to arrive after its image (they travel as "
                      "separate best-effort messages and come late when the CPU is loaded); a "
                      "frame still incomplete then is refused (camera_info, pose) or not made a "
                      "keyframe (segments).", range=(0.0, 5.0)),
        NodeParameter("camera_info_reuse", 2.0, "Seconds an image without a camera_info at its "
                      "stamp may reuse the newest camera_info of its frame and size (drivers that "
                      "send camera_info every other frame, or at 1 Hz); counted in ~/status as "
                      "camera_info_reused. 0: every image needs its own.", range=(0.0, 3600.0)),
        NodeParameter("tf_timeout", 0.05, "Seconds to wait for a TF pose at the image's stamp "
                      "(pose_source 'tf').", range=(0.0, 5.0)),
        NodeParameter("queue_length", 8, "Frames waiting for the worker; when full, the oldest "
                      "is dropped (and counted), so the worker always takes recent frames. 8 "
                      "holds 4 s of a 2 Hz stream: a worker held up for seconds on busy cores "
                      "(a clustering, a render) catches up instead of losing keyframes; at "
                      "30 Hz it is a quarter of a second.",
                      range=(1, 64)),
        NodeParameter("segmentation_max_side", 640, "~/segmentation is rendered at most this "
                      "many pixels on its longer side and scaled up (nearest) to the image's "
                      "size, so that large frames (1080p and up) do not hold the worker for "
                      "seconds; the model trains at a lower resolution anyway on a CPU "
                      "(`train.cpu_max_resolution`). 0: the image's own size.",
                      range=(0, 100_000)),
        NodeParameter("publish_rate", 1.0, "Hz at which ~/clusters and ~/objects/markers are "
                      "refreshed (reliable, transient-local).", range=(0.01, 30.0)),
        NodeParameter("cluster_period", 5.0, "Seconds between two clusterings of the model "
                      "into objects, in a background thread (about a second each on a CPU); "
                      "~/list_objects with recluster=true clusters at once.",
                      range=(0.1, 3600.0)),
        NodeParameter("cluster_max_points", 100_000, "At most this many Gaussians (the most "
                      "opaque) in ~/clusters.", range=(1, 10_000_000)),
        NodeParameter("map_directory", "~/.ros/cgc_maps", "Folder that ~/save_map and ~/load_map "
                      "names are relative to; names that leave it are refused."),
        NodeParameter("service_timeout", 30.0, "Seconds a service request may wait for and run "
                      "on the worker before it is answered with success=false.",
                      range=(0.1, 3600.0)),
        NodeParameter("service_queue_length", 4, "Service requests waiting for the worker; more "
                      "are refused at once with success=false.", range=(1, 64)),
        NodeParameter("max_stamp_skew", 0.0, "Images whose stamp lies farther than this many "
                      "seconds from the node's clock (ROS time: sim time when use_sim_time) are "
                      "refused, so that one frame stamped far in the future cannot make every "
                      "later frame look out of order. 0: no check (bags played without --clock, "
                      "test streams with made-up stamps).", range=(0.0, 1e9)),
        NodeParameter("autosave_period", 0.0, "Seconds between two automatic saves of the map "
                      "to `autosave_name` in map_directory (atomic, like ~/save_map). 0: off.",
                      range=(0.0, 1e6)),
        NodeParameter("autosave_name", "autosave", "Map name the automatic saves go to (a "
                      "name inside map_directory, as for ~/save_map)."),
        NodeParameter("image_rectified", False, "True: `image` carries rectified images "
                      "(image_proc's image_rect): the intrinsics are camera_info's P and its "
                      "distortion D is not applied. False: raw images, undistorted by the node "
                      "with camera_info's K, D and distortion_model (plumb_bob, "
                      "rational_polynomial, equidistant; an all-zero D costs nothing); "
                      "~/segmentation and masks stay on the raw image's grid."),
    ]


@dataclass(frozen=True)
class NodeSettings:
    """The node's own parameters, checked (`cgc_ros.params.declare` reads them)."""

    map_frame: str
    pose_source: str
    external_segments: bool
    sync_slop: float
    sync_wait: float
    camera_info_reuse: float
    tf_timeout: float
    queue_length: int
    segmentation_max_side: int
    publish_rate: float
    cluster_period: float
    cluster_max_points: int
    map_directory: Path
    service_timeout: float
    service_queue_length: int
    max_stamp_skew: float
    autosave_period: float
    autosave_name: str
    image_rectified: bool = False
