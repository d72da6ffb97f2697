"""Scene input: posed image folders (nerfstudio, COLMAP), ground truth and synthetic scenes."""

from cgc_core.data.ground_truth import Prompt, load_gt_masks, load_prompts
from cgc_core.data.load import load_scene
from cgc_core.data.scene import Scene, SceneError

__all__ = ["Prompt", "Scene", "SceneError", "load_gt_masks", "load_prompts", "load_scene"]
