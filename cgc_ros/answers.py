"""The node's services: each request message -> a map service call -> the response message.

They run on the worker thread (queued by the node with a timeout). A `QueryError` from the
service becomes `success=false` with its message (the node answers it); what a request means
and whether it is valid is the service's (cgc_core.service).
"""

from __future__ import annotations

import numpy as np

from cgc_core.service import Query, QueryError
from cgc_ros import conversions as cv
from cgc_ros.msg import ObjectInfo as ObjectInfoMsg
from cgc_ros.worker import Worker, object_msg


class Answers:
    def __init__(self, worker: Worker):
        self.worker, self.service = worker, worker.service

    def _view(self, request):
        """(the request's own camera or None for the latest keyframe, the mask's header)."""
        info, pose = request.camera_info, request.camera_pose
        map_frame = self.worker.settings.map_frame
        if info.width == 0 and cv.pose_is_set(pose):
            raise QueryError("camera_pose is given but camera_info is empty (width 0): give "
                             "both for a view of your own, or neither for the latest keyframe")
        if request.image.height == 0 and info.width == 0:
            # The keyframe's optical frame: the node's camera, as far as the node knows.
            header = self.worker.map_header()
            header.frame_id = self.worker.latest_frame_id
            return None, header
        if info.width == 0:
            raise QueryError("an image needs its camera_info and camera_pose")
        if pose.header.frame_id and pose.header.frame_id != map_frame:
            raise QueryError(f"camera_pose is in '{pose.header.frame_id}', not in map_frame "
                             f"'{map_frame}'")
        try:
            camera = cv.camera_info_to_camera(info, cv.pose_to_matrix(pose.pose), "request",
                                              rectified=self.worker.settings.image_rectified)
        except cv.ConversionError as error:
            raise QueryError(str(error)) from None
        if request.image.height > 0 and (request.image.width, request.image.height) != (
                camera.width, camera.height):
            raise QueryError(f"image is {request.image.width}x{request.image.height}, "
                             f"camera_info {camera.width}x{camera.height}")
        return camera, (request.image.header if request.image.height > 0 else info.header)

    def segment_object(self, request, response):
        # The service's refusals first ("no map yet", the threshold), as before the view's.
        self.service.served_snapshot()
        self.service.thresholds(request.threshold)
        camera, header = self._view(request)
        answer = self.service.segment_object(Query(
            use_pixel=request.use_pixel, u=request.u, v=request.v, text=request.text,
            threshold=request.threshold, camera=camera))
        selection, obj = answer.selection, answer.object
        summary, map_header = selection.summary, self.worker.map_header()
        color = obj.color if obj is not None else (255, 255, 255)
        points = selection.points
        cloud = cv.points_to_cloud(points, np.tile(np.array(color, np.uint8), (len(points), 1)),
                                   map_header)
        response.mask = cv.mask_to_image(answer.mask, header)
        response.points = cloud
        info = ObjectInfoMsg(header=map_header, id=0 if obj is None else int(obj.id),
                             label="" if obj is None else obj.label,
                             score=float(summary["score"]), point_count=int(summary["count"]),
                             color=cv.color_rgba(color))
        lo, hi = summary["box_min"], summary["box_max"]
        pose = np.eye(4)
        pose[:3, 3] = (lo + hi) / 2  # the axis-aligned box's centre: a conversion of corners
        info.box_center = cv.matrix_to_pose(pose)
        info.centroid.x, info.centroid.y, info.centroid.z = (float(v)
                                                             for v in summary["centroid"])
        info.box_size.x, info.box_size.y, info.box_size.z = (float(v) for v in hi - lo)
        response.object = info
        response.score = float(summary["score"])
        response.success = summary["count"] > 0
        response.message = (f"{summary['count']} Gaussians at threshold "
                            f"{answer.selection_threshold:g}, {int(answer.mask.sum())} pixels at "
                            f"{answer.threshold:g}" if response.success else
                            f"no Gaussian reaches the threshold {answer.selection_threshold:g}")
        self.worker.outputs.object.publish(cloud)
        return response

    def list_objects(self, request, response):
        objects = self.service.list_objects(request.recluster)
        header = self.worker.map_header()
        response.objects = [object_msg(o, header) for o in objects]
        response.success = True
        response.message = f"{len(response.objects)} objects"
        return response

    def label_object(self, request, response):
        obj = self.service.label(request.id, request.label)
        response.object = object_msg(obj, self.worker.map_header())
        response.success = True
        response.message = f"object {obj.id} is now '{obj.label}'"
        return response

    def save_map(self, request, response):
        path = self.service.save(request.name)
        response.success, response.path = True, str(path)
        response.message = f"saved to {path}"
        return response

    def load_map(self, request, response):
        path = self.service.load(request.name)
        response.success, response.path = True, str(path)
        response.message = f"loaded {path}"
        return response

    def reset(self, request, response):
        self.service.reset()
        response.success, response.message = True, "map cleared"
        return response
