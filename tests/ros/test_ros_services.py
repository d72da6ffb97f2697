"""A real cross-process service round trip with the generated cgc_ros services.

service_server.py and service_client.py run as two separate ROS processes in a random domain
(see conftest.py) and a namespace of their own; every wait is bounded and the server is
always stopped, also when the test fails.
"""

import os
import signal

import pytest


@pytest.fixture
def server(ros_process, ros_namespace):
    """service_server.py serving in ros_namespace (stopped by ros_process at teardown)."""
    return ros_process("service_server.py", ros_namespace, "--lifetime", "60", timeout=15)


def test_list_and_segment_round_trip_between_processes(server, run_script, ros_namespace):
    result = run_script("service_client.py", ros_namespace, "--timeout", "10", timeout=30)

    listed = result["list"]
    assert listed["success"] is True
    assert listed["message"] == "recluster=True"
    assert listed["objects"] == [
        {"id": 1, "label": "mug", "point_count": 100, "frame_id": "map", "centroid_x": 1.0,
         "box_size": pytest.approx([0.1, 0.2, 0.3])},
        {"id": 2, "label": "", "point_count": 250, "frame_id": "map", "centroid_x": 2.0,
         "box_size": pytest.approx([0.1, 0.2, 0.3])},
    ]

    segment = result["segment"]
    assert segment["success"] is True
    # Every part of the request reached the server: text, pixel, camera_info, camera_pose.
    assert segment["message"] == "text=red mug u=2 v=1 frame=map fx=525"
    assert segment["score"] == pytest.approx(0.7)  # threshold 0 -> the default
    # Mask in the view's size and frame, set only at the prompted pixel (row 1, column 2).
    assert segment["mask"] == {"size": [3, 4], "encoding": "mono8",
                               "frame_id": "camera_optical", "on": [1 * 4 + 2]}
    points = segment["points"]
    assert points["fields"] == ["x", "y", "z", "rgb"]
    assert points["width"] == 2
    assert points["xyz_rgb"] == [1.0, 2.0, 3.0]
    assert points["rgb_bits"] == 0x00FF8000
    assert segment["object"] == {"id": 7, "label": "red mug"}


def test_server_stops_on_sigint(server):
    """The cleanup path ros_process relies on: SIGINT ends the server promptly and cleanly."""
    os.killpg(server.pid, signal.SIGINT)
    assert server.wait(timeout=10) == 0
