"""Grounding backends with model weights, loaded from local paths only (nothing is downloaded).

- Grounding DINO (`transformers`): the text is detected in each keyframe; the best box, on the
  keyframe that sees it best, gives the discriminative feature (the mean rendered feature inside
  the box's central half), and the feature gives the object (paper, section 4.2): each object
  scores box score x cosine(feature, object's mean feature).
- CLIP (`open_clip`): each object is cropped from the keyframe that sees it best (its Gaussians'
  projected box, padded); the text and the crops are embedded and the softmax of their scaled
  cosines over the objects is each object's score.

`model_scorers` builds the scorers that `ground_text` takes; both need `torch` only besides their
own package, imported when used.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from cgc_core.cameras import Camera
from cgc_core.config import ObjectsConfig, RenderConfig
from cgc_core.objects.cluster import ObjectInfo, ObjectTable
from cgc_core.objects.grounding import ModelScorer
from cgc_core.query import cosine_to, render_feature_map

Keyframe = tuple[Camera, np.ndarray]
"""A posed view and its [H, W, 3] uint8 image."""


def _require(path: str, what: str) -> Path:
    if not path:
        raise ValueError(f"grounding backend {what} is enabled but objects.{what}_path is empty")
    found = Path(path).expanduser()
    if not found.exists():
        raise FileNotFoundError(f"objects.{what}_path not found: {found}")
    return found


@functools.lru_cache(maxsize=2)
def load_dino(path: str):
    """(model, processor) of a Grounding DINO folder in the transformers layout."""
    from transformers import GroundingDinoForObjectDetection, GroundingDinoProcessor
    folder = str(_require(path, "dino"))
    model = GroundingDinoForObjectDetection.from_pretrained(folder, local_files_only=True).eval()
    return model, GroundingDinoProcessor.from_pretrained(folder, local_files_only=True)


@functools.lru_cache(maxsize=2)
def load_clip(checkpoint: str, model_name: str):
    """(model, preprocess, tokenizer) of an open_clip checkpoint; `model_name` is an open_clip
    architecture or a path to a JSON model config (registered under its file stem)."""
    import open_clip
    weights = str(_require(checkpoint, "clip"))
    if model_name.endswith(".json"):
        config = Path(model_name).expanduser()
        if not config.is_file():
            raise FileNotFoundError(f"objects.clip_model config not found: {config}")
        open_clip.add_model_config(config)
        model_name = config.stem
    model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=weights)
    return model.eval(), preprocess, open_clip.get_tokenizer(model_name)


def projected_box(camera: Camera, points: np.ndarray) -> tuple[np.ndarray, float] | None:
    """(pixel box [4] x0, y0, x1, y1 clipped to the image, share of the points in front of the
    camera and inside the image) of [P, 3] world points, or None when none is visible."""
    local = points @ camera.world_to_cam[:3, :3].T + camera.world_to_cam[:3, 3]
    front = local[:, 2] > 1e-3
    if not front.any():
        return None
    u = camera.fx * local[front, 0] / local[front, 2] + camera.cx
    v = camera.fy * local[front, 1] / local[front, 2] + camera.cy
    inside = (u >= 0) & (u < camera.width) & (v >= 0) & (v < camera.height)
    if inside.sum() < 3:
        return None
    box = np.array([u[inside].min(), v[inside].min(), u[inside].max(), v[inside].max()])
    return box, float(inside.sum()) / len(points)


def best_view_box(obj_points: np.ndarray, keyframes: list[Keyframe]
                  ) -> tuple[Keyframe, np.ndarray] | None:
    """The keyframe that sees the object best (most of its points in view, then largest box)
    and the object's pixel box there."""
    best, best_key = None, None
    for keyframe in keyframes:
        seen = projected_box(keyframe[0], obj_points)
        if seen is None:
            continue
        box, share = seen
        key = (round(share, 2), (box[2] - box[0]) * (box[3] - box[1]))
        if best_key is None or key > best_key:
            best, best_key = (keyframe, box), key
    return best


def clip_scorer(config: ObjectsConfig, splats, table: ObjectTable,
                keyframes: list[Keyframe]) -> ModelScorer:
    from PIL import Image
    model, preprocess, tokenizer = load_clip(config.clip_path, config.clip_model)
    means = splats["means"].detach().cpu().numpy()

    @torch.no_grad()
    def score(objects: list[ObjectInfo], text: str) -> dict[int, float]:
        crops, ids = [], []
        for obj in objects:
            seen = best_view_box(means[table.members(obj.id)], keyframes)
            if seen is None:
                continue
            (camera, image), box = seen
            pad = 0.1 * max(box[2] - box[0], box[3] - box[1], 8.0)
            x0, y0 = int(max(0, box[0] - pad)), int(max(0, box[1] - pad))
            x1 = int(min(camera.width, box[2] + pad + 1))
            y1 = int(min(camera.height, box[3] + pad + 1))
            crops.append(preprocess(Image.fromarray(image[y0:y1, x0:x1])))
            ids.append(obj.id)
        if not crops:
            return {}
        image_features = torch.nn.functional.normalize(model.encode_image(torch.stack(crops)),
                                                       dim=-1)
        text_features = torch.nn.functional.normalize(model.encode_text(tokenizer([text])),
                                                      dim=-1)
        logits = model.logit_scale.exp() * (image_features @ text_features.T).squeeze(1)
        return dict(zip(ids, torch.softmax(logits, dim=0).tolist()))

    return score


def dino_scorer(config: ObjectsConfig, splats, keyframes: list[Keyframe],
                render: RenderConfig) -> ModelScorer:
    model, processor = load_dino(config.dino_path)

    @torch.no_grad()
    def detect(text: str) -> tuple[float, Keyframe, np.ndarray] | None:
        """(score, keyframe, box) of the best detection of `text` over the keyframes."""
        prompt = text.strip().lower()
        prompt = prompt if prompt.endswith(".") else prompt + "."  # DINO's phrase separator
        best = None
        for camera, image in keyframes:
            inputs = processor(images=image, text=prompt, return_tensors="pt")
            outputs = model(**inputs)
            found = processor.post_process_grounded_object_detection(
                outputs, inputs.input_ids, threshold=config.dino_box_threshold,
                text_threshold=config.dino_box_threshold,
                target_sizes=[(camera.height, camera.width)])[0]
            if len(found["scores"]) == 0:
                continue
            top = int(torch.argmax(found["scores"]))
            score = float(found["scores"][top])
            if best is None or score > best[0]:
                best = (score, (camera, image), found["boxes"][top].numpy())
        return best

    def box_feature(camera: Camera, box: np.ndarray) -> Tensor | None:
        """The unit mean rendered feature in the box's central half."""
        features = render_feature_map(splats, camera, render)
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        hw, hh = max((box[2] - box[0]) / 4, 1.0), max((box[3] - box[1]) / 4, 1.0)
        x0, x1 = int(max(0, cx - hw)), int(min(camera.width, cx + hw + 1))
        y0, y1 = int(max(0, cy - hh)), int(min(camera.height, cy + hh + 1))
        patch = features[y0:y1, x0:x1].reshape(-1, features.shape[-1])
        patch = patch[patch.norm(dim=1) > 0]
        if len(patch) == 0:
            return None
        return torch.nn.functional.normalize(patch.mean(dim=0), dim=0)

    def score(objects: list[ObjectInfo], text: str) -> dict[int, float]:
        found = detect(text)
        if found is None:
            return {}
        box_score, (camera, _), box = found
        feature = box_feature(camera, box)
        if feature is None:
            return {}
        return {o.id: box_score * max(0.0, float(cosine_to(torch.from_numpy(o.part_features),
                                                           feature).max()))
                for o in objects}

    return score


def model_scorers(config: ObjectsConfig, splats, table: ObjectTable, keyframes: list[Keyframe],
                  render: RenderConfig) -> dict[str, ModelScorer]:
    """{'dino': scorer, 'clip': scorer} for the weights backends enabled in
    `config.grounding` (ValueError / FileNotFoundError when one lacks its weights path)."""
    backends = {b.strip() for b in config.grounding.split(",")}
    scorers: dict[str, ModelScorer] = {}
    if "dino" in backends:
        scorers["dino"] = dino_scorer(config, splats, keyframes, render)
    if "clip" in backends:
        scorers["clip"] = clip_scorer(config, splats, table, keyframes)
    return scorers
