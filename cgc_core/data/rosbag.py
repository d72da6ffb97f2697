"""Posed frames from a rosbag2 folder, read with `rosbags` (pure Python: no ROS install needed).

A bag holds the topics a robot records: sensor_msgs/Image, sensor_msgs/CameraInfo, optionally a
depth Image and a segments Image, and the camera pose as geometry_msgs/PoseStamped of the optical
frame in the map frame (OpenCV axes, as the node's `pose` input). Messages are matched to each
image by header stamp within `slop` seconds, as the node matches them. TF trees are not
composed here: record the optical frame's pose as a PoseStamped topic.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from cgc_core.cameras import Camera
from cgc_core.data.messages import (
    ConversionError,
    camera_info_fields,
    camera_info_to_camera,
    image_to_depth,
    image_to_rgb,
    image_to_segments,
    nearest_stamped,
    pose_to_matrix,
    stamp_seconds,
)
from cgc_core.io import DataError


@dataclass(frozen=True)
class BagTopics:
    """Topic names in the bag (flags of `scripts/run.sh --bag`)."""

    image: str = "/camera/image"
    camera_info: str = "/camera/camera_info"
    pose: str = "/camera/pose"
    depth: str | None = None
    segments: str | None = None


@dataclass
class BagFrame:
    """One image with its companions, in cgc_core's conventions. The arrays are as the bag holds
    them: raw (distorted) when `camera` has a lens (`cgc_core.lens`), which its camera_info
    carries on when written or played again."""

    stamp: float
    camera: Camera
    image: np.ndarray               # [H, W, 3] uint8 RGB
    depth: np.ndarray | None = None  # [H, W] float32 metres, 0 = invalid
    segments: np.ndarray | None = None  # [H, W] int64 segment ids, 0 = none


def read_bag_frames(path: str | Path, topics: BagTopics, slop: float = 0.05
                    ) -> Iterator[BagFrame]:
    """The bag's images in stamp order, each with its camera_info, pose (required) and depth and
    segments (when their topics are given and a message lies within `slop`). Images without a
    camera_info or pose within the slop, or that the node's conversions refuse
    (`cgc_core.data.messages`: encoding, size, intrinsics, quaternion, depth), are skipped, as
    the node would refuse them."""
    from rosbags.highlevel import AnyReader

    path = Path(path)
    if not (path / "metadata.yaml").is_file():
        raise DataError(f"{path}: not a rosbag2 folder (no metadata.yaml)")
    wanted = {name: topic for name, topic in vars(topics).items() if topic}
    by_topic: dict[str, list[tuple[float, object]]] = {name: [] for name in wanted}
    with AnyReader([path]) as reader:
        present = {c.topic for c in reader.connections}
        missing = [t for n, t in wanted.items() if t not in present and n in ("image", "pose",
                                                                            "camera_info")]
        if missing:
            raise DataError(f"{path}: no topic {', '.join(missing)} in the bag (it has: "
                            f"{', '.join(sorted(present))})")
        connections = [c for c in reader.connections if c.topic in wanted.values()]
        names = {topic: name for name, topic in wanted.items()}
        for connection, _, raw in reader.messages(connections=connections):
            msg = reader.deserialize(raw, connection.msgtype)
            by_topic[names[connection.topic]].append((stamp_seconds(msg.header), msg))
    for stamp, image in sorted(by_topic["image"], key=lambda item: item[0]):
        info = nearest_stamped(by_topic["camera_info"], stamp, slop)
        pose = nearest_stamped(by_topic["pose"], stamp, slop)
        if info is None or pose is None:
            continue
        depth = nearest_stamped(by_topic.get("depth", []), stamp, slop)
        segments = nearest_stamped(by_topic.get("segments", []), stamp, slop)
        try:  # the node's conversions and checks: a frame it would refuse is skipped here too
            camera = camera_info_to_camera(info, pose_to_matrix(pose.pose), f"{stamp:.6f}")
            frame = BagFrame(stamp=stamp, camera=camera, image=image_to_rgb(image),
                             depth=None if depth is None else image_to_depth(depth)[0],
                             segments=None if segments is None else
                             image_to_segments(segments).astype(np.int64))
        except ConversionError:
            continue
        yield frame


def write_bag_frames(path: str | Path, frames: list[BagFrame], topics: BagTopics,
                     frame_id: str = "camera_optical", map_frame: str = "map") -> Path:
    """Write frames as a rosbag2 folder (sqlite3, CDR) with rosbags: an Image (rgb8), CameraInfo
    and PoseStamped per frame, plus 32FC1 depth and 32SC1 segments when the frame has them and
    their topics are given. For trying the node on a scene with `ros2 bag play`, and for tests.
    """
    from rosbags.rosbag2 import Writer
    from rosbags.typesys import Stores, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    t = store.types
    path = Path(path)

    def head(stamp: float, frame: str):
        sec = int(stamp)
        return t["std_msgs/msg/Header"](stamp=t["builtin_interfaces/msg/Time"](
            sec=sec, nanosec=int(round((stamp - sec) * 1e9)) % 1_000_000_000), frame_id=frame)

    def image(stamp: float, pixels: np.ndarray, encoding: str):
        pixels = np.ascontiguousarray(pixels)
        height, width = pixels.shape[:2]
        return t["sensor_msgs/msg/Image"](
            header=head(stamp, frame_id), height=height, width=width, encoding=encoding,
            is_bigendian=0, step=pixels.nbytes // height,
            data=pixels.view(np.uint8).reshape(-1))

    with Writer(path, version=9) as writer:
        names = {"image": "sensor_msgs/msg/Image", "camera_info": "sensor_msgs/msg/CameraInfo",
                 "pose": "geometry_msgs/msg/PoseStamped", "depth": "sensor_msgs/msg/Image",
                 "segments": "sensor_msgs/msg/Image"}
        connections = {name: writer.add_connection(getattr(topics, name), msgtype,
                                                   typestore=store)
                       for name, msgtype in names.items() if getattr(topics, name)}
        for frame in frames:
            cam, stamp = frame.camera, frame.stamp
            info = camera_info_fields(cam)  # a camera with a lens: its raw K and D
            quat = Rotation.from_matrix(cam.cam_to_world[:3, :3]).as_quat()  # x, y, z, w
            messages = {
                "image": image(stamp, frame.image.astype(np.uint8), "rgb8"),
                "camera_info": t["sensor_msgs/msg/CameraInfo"](
                    header=head(stamp, frame_id), height=info["height"], width=info["width"],
                    distortion_model=info["distortion_model"], d=np.array(info["d"]),
                    k=np.array(info["k"]), r=np.eye(3).reshape(-1), p=np.array(info["p"]),
                    binning_x=0, binning_y=0, roi=t["sensor_msgs/msg/RegionOfInterest"](
                        x_offset=0, y_offset=0, height=0, width=0, do_rectify=False)),
                "pose": t["geometry_msgs/msg/PoseStamped"](
                    header=head(stamp, map_frame), pose=t["geometry_msgs/msg/Pose"](
                        position=t["geometry_msgs/msg/Point"](*cam.cam_to_world[:3, 3]),
                        orientation=t["geometry_msgs/msg/Quaternion"](*quat))),
            }
            if frame.depth is not None:
                messages["depth"] = image(stamp, frame.depth.astype("<f4"), "32FC1")
            if frame.segments is not None:
                messages["segments"] = image(stamp, frame.segments.astype("<i4"), "32SC1")
            for name, msg in messages.items():
                if name in connections:
                    writer.write(connections[name], int(round(stamp * 1e9)),
                                 store.serialize_cdr(msg, names[name]))
    return path
