"""The map service: what every face of cgc (the ROS node, the `cgc` command, the report, the
benches) calls, so that they agree. ROS-free.

    settings.py     the settings a face sets (frame matching, queues, rates, paths)
    buffers.py      thread-safe queues between a face's callbacks and its worker
    frames.py       frame admission: stamp rules, companions matched by stamp, decoding
    query.py        the one query pipeline: pixel / text / view -> mask, selection, box
    maps.py         the map folder (one format for `cgc train`, `cgc stream`, `~/save_map`)
    map_service.py  MapService: a live session, its object table and its map folder

A face imports from here (and from `cgc_core.data.messages` to read messages), nothing below.
"""

from cgc_core.config import CGCConfig, apply_overrides, config_fields, describe_type
from cgc_core.service.buffers import DropOldestQueue, RateLimitedLog, RequestQueue, StampBuffer
from cgc_core.service.frames import FrameInputs, FrameRejected
from cgc_core.service.map_service import Answer, MapService, Query
from cgc_core.service.query import QueryError
from cgc_core.service.settings import NodeParameter, NodeSettings, node_parameters, tf_available

__all__ = ["CGCConfig", "apply_overrides", "config_fields", "describe_type", "DropOldestQueue",
           "RateLimitedLog", "RequestQueue", "StampBuffer", "FrameInputs", "FrameRejected",
           "Answer", "MapService", "Query", "QueryError", "NodeParameter", "NodeSettings",
           "node_parameters", "tf_available"]
