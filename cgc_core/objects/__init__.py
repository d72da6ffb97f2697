"""Objects from a trained model: scene clustering, 3D extraction, text queries.

The small API the command line and the ROS node wrap (every function takes `splats` as any
mapping name -> Tensor: an offline run's ParameterDict or a live snapshot's detached tensors):

    cluster_objects(splats, config.objects, previous=None) -> ObjectTable
    ground_text(table, text, config.objects, view=camera) -> GroundingResult
    pixel_prompt(splats, camera, u, v, config.render) -> (feature, surface point)
    extract_object(splats, feature, threshold, config.objects, seed=point | members=mask,
                   views=keyframe cameras, render=config.render)
        -> ExtractedObject (points, colours, boxes, Gaussian subset)
    object_id_map(splats, table, camera, config.render, threshold) -> [H, W] object ids
    run_objects(RUN, splats, config.objects) / label_object(table, id, text) / save_object_table
"""

from cgc_core.objects.cluster import UNASSIGNED, ObjectInfo, ObjectTable, cluster_objects
from cgc_core.objects.extract import (
    ExtractedObject,
    extract_object,
    pixel_prompt,
    write_point_cloud,
)
from cgc_core.objects.grounding import GroundingResult, ground_text
from cgc_core.objects.segmentation import object_id_map
from cgc_core.objects.store import (
    OBJECTS_FILE,
    label_object,
    load_object_table,
    run_objects,
    save_object_table,
)

__all__ = ["UNASSIGNED", "ObjectInfo", "ObjectTable", "cluster_objects", "ExtractedObject",
           "extract_object", "pixel_prompt", "write_point_cloud", "GroundingResult", "ground_text",
           "OBJECTS_FILE", "label_object", "load_object_table", "run_objects",
           "save_object_table", "object_id_map"]
