"""A cgc node whose training iteration holds the model for seconds, asked `~/segment_object`.

    busy_model.py NAMESPACE SCENE MAP_DIRECTORY [--hold 4]

Runs the real node (cgc_ros.node.CgcNode, its worker, its live session training in its own
thread) in this process, so that it can hold the model's lock as a long training iteration does
(1.7 s at 100k Gaussians on busy CPU cores); a second rclpy node with its own executor calls the
services over DDS. The scene's training views go straight into the node's session (the topics
are tested elsewhere). Then:

1. once the session has trained a few iterations, the model's lock is held for --hold seconds
   while `segment_object` (pixel prompt, latest keyframe) is called: the answer's time;
2. after the lock is let go, training goes on: the versions of the model copies the node serves;
3. `~/reset`, then `segment_object` again: what a cleared map answers.

Prints one JSON object. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
from std_srvs.srv import Trigger

from cgc_core.data.load import load_scene
from cgc_core.io import read_label_png
from cgc_ros.node import CgcNode
from cgc_ros.srv import SegmentObject

ROOT = Path(__file__).resolve().parents[2]


def wait_for(condition, timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return False


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("namespace")
    parser.add_argument("scene", type=Path)
    parser.add_argument("map_directory")
    parser.add_argument("--hold", type=float, default=4.0)
    args = parser.parse_args()
    rclpy.init(args=["busy_model", "--ros-args", "-r", f"__ns:={args.namespace}",
                     "--params-file", str(ROOT / "config" / "cgc.yaml"),
                     "-p", "pose_source:=topic", "-p", "external_segments:=true",
                     "-p", f"map_directory:={args.map_directory}", "-p", "autosave_period:=0.0"])
    node = CgcNode()
    node_executor = MultiThreadedExecutor(num_threads=8)
    node_executor.add_node(node)
    threading.Thread(target=node_executor.spin, daemon=True).start()
    client = rclpy.create_node("busy_model_client", namespace=args.namespace)
    client_executor = SingleThreadedExecutor()
    client_executor.add_node(client)
    segment = client.create_client(SegmentObject, "cgc/segment_object")
    reset = client.create_client(Trigger, "cgc/reset")

    def call(service, request, timeout: float = 30.0):
        if not service.wait_for_service(timeout_sec=timeout):
            raise TimeoutError(f"{service.srv_name} not available")
        started = time.monotonic()
        future = service.call_async(request)
        client_executor.spin_until_future_complete(future, timeout_sec=timeout)
        if not future.done():
            raise TimeoutError(f"no answer from {service.srv_name} within {timeout} s")
        return future.result(), time.monotonic() - started

    try:
        scene = load_scene(args.scene)
        session = node.worker.service.session
        for camera in scene.train_cameras:
            segments = read_label_png(args.scene / "masks_inconsistent" / f"{camera.name}.png")
            session.add_frame(camera, scene.load_image(camera), scene.load_depth(camera),
                              segments.astype(np.int64))
        if not wait_for(lambda: session.stats().step >= 20, 120.0):
            raise RuntimeError("the session did not train 20 iterations in 120 s")
        request = SegmentObject.Request(use_pixel=True, u=32, v=24)
        call(segment, request)  # the service is up and has answered once

        released = threading.Event()

        def hold() -> None:  # a training iteration that takes --hold seconds
            with session.lock:
                released.wait(args.hold)
        holder = threading.Thread(target=hold)
        with session.lock:  # taken here first, so that the request surely finds it held
            holder.start()
            time.sleep(0.2)
        time.sleep(0.1)
        step_before = session.trainer.step_count
        busy, busy_seconds = call(segment, request)
        step_after = session.trainer.step_count  # the lock still held: no iteration since
        released.set()
        holder.join()

        served = []
        for _ in range(8):  # training goes on: the copies the node serves move with it
            time.sleep(0.5)
            copy = getattr(node.worker.service, "_served", None)  # None: a node that has none
            served.append(None if copy is None else copy[2].version)
        cleared, _ = call(reset, Trigger.Request())
        after_reset, _ = call(segment, request)
        print(json.dumps({
            "busy": {"seconds": busy_seconds, "success": busy.success, "message": busy.message,
                     "mask_pixels": int(np.count_nonzero(np.frombuffer(busy.mask.data,
                                                                        np.uint8))),
                     "steps_during": step_after - step_before},
            "served_versions": served, "reset": cleared.success,
            "after_reset": {"success": after_reset.success, "message": after_reset.message},
            "latency_ms": {k: list(v) for k, v in node.worker.service.latency.items()
                           if k in ("segment_object_ms", "model_wait_ms")}}), flush=True)
    finally:
        node_executor.shutdown(timeout_sec=5)
        node.destroy_node()
        client.destroy_node()
        rclpy.try_shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
