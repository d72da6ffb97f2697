"""Per-view corrections learned with the map: a camera pose correction and an exposure.

Given poses come from SLAM or SfM and carry error (half a degree is typical), and cameras change
exposure from frame to frame. Both make one view disagree with the others, and the map pays for
the disagreement with blur, floaters and features that bleed across object borders. So each
training view gets its own small correction, optimised jointly with the Gaussians through the
rasterizer's gradients, as SLAM-coupled splatting systems refine poses (MonoGS, SplaTAM) and 3DGS
trainers learn per-image appearance:

- pose: a twist (rotation vector omega [3], translation tau [3]) in the camera's own frame, applied
  on the left of the given world-to-camera matrix: viewmat' = D(omega, tau) @ viewmat.
- exposure: a per-channel gain and offset, rgb' = rgb * exp(gain) + offset. Queries and reports
  render the map at the neutral exposure (no correction), so the map's colours are what the
  average view saw.

The fast CPU rasterizer gives no gradient with respect to the camera, so the pose correction is
applied to the Gaussians instead: rendering the world moved by T = c2w @ D @ w2c from the given
camera is the same image as rendering the world from the corrected camera, and T's parameters get
their gradients through the Gaussians' centres and rotations (`world_transform`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from cgc_core.config import TrainConfig


def rotation_from_vector(omega: Tensor) -> tuple[Tensor, Tensor]:
    """Rotation matrix and quaternion of a rotation vector (differentiable, also at zero).

    Args:
        omega: [3] axis * angle (radians).

    Returns:
        [3, 3] rotation matrix, [4] unit quaternion (w, x, y, z).
    """
    theta2 = (omega * omega).sum()
    theta = torch.sqrt(theta2 + 1e-20)
    half = 0.5 * theta
    # sin(theta/2)/theta is smooth at 0 (-> 1/2); the epsilon keeps sqrt's gradient finite.
    quat = torch.cat([torch.cos(half).reshape(1), omega * (torch.sin(half) / theta)])
    w, x, y, z = quat.unbind()
    rot = torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]).reshape(3, 3)
    return rot, quat


def left_product_matrix(q: Tensor) -> Tensor:
    """[4, 4] matrix L(q) with L(q) @ p = q * p (Hamilton product, w x y z) for q [4]."""
    w, x, y, z = q.unbind()
    return torch.stack([
        torch.stack([w, -x, -y, -z]),
        torch.stack([x, w, -z, y]),
        torch.stack([y, z, w, -x]),
        torch.stack([z, -y, x, w]),
    ])


@dataclass
class WorldTransform:
    """A rigid motion of the world, x -> rotation @ x + translation, for rendering."""

    rotation: Tensor     # [3, 3]
    quat: Tensor         # [4] (w, x, y, z), the same rotation
    translation: Tensor  # [3]

    def apply(self, means: Tensor, quats: Tensor) -> tuple[Tensor, Tensor]:
        """Moved centres [N, 3] and rotations [N, 4] of Gaussians.

        Both are one matrix product each (the quaternion product q * p is a 4x4 matrix of q
        times p), so the forward and backward passes over N Gaussians are four BLAS calls instead
        of a few dozen elementwise ones: it runs on every training iteration.
        """
        moved = torch.addmm(self.translation.to(means), means, self.rotation.T.to(means))
        return moved, quats @ left_product_matrix(self.quat).T.to(quats)

    def camera_centre(self, viewmat: Tensor) -> Tensor:
        """[3] the centre of the camera that sees the unmoved world as `viewmat` sees the moved
        one (for view-dependent colour)."""
        centre = torch.linalg.inv(viewmat)[:3, 3]
        return self.rotation.T @ (centre - self.translation)


class ViewCorrection:
    """One view's learned pose and exposure correction, with its own Adam state.

    Each view's parameters change only on the iterations that render that view, so each view has
    its own optimiser (12 numbers; the step is cheap next to a render). Rotation and translation
    are separate Adam groups: Adam's step does not depend on the gradient's scale, so only a rate
    of their own sets how far each moves per step.
    """

    def __init__(self, config: TrainConfig, device: torch.device | str = "cpu"):
        self.rotation = torch.zeros(3, device=device, requires_grad=True)
        """omega [3]: rotation vector (radians) in the camera frame."""
        self.translation = torch.zeros(3, device=device, requires_grad=True)
        """tau [3]: translation (metres) in the camera frame."""
        self.exposure = torch.zeros(6, device=device, requires_grad=True)
        """log-gain [3] then offset [3], per RGB channel."""
        groups = []
        if config.pose_refine:
            groups += [{"params": [self.rotation], "lr": config.lr_pose_rotation,
                        "name": "rotation"},
                       {"params": [self.translation], "lr": config.lr_pose_translation,
                        "name": "translation"}]
        if config.exposure_compensation:
            groups.append({"params": [self.exposure], "lr": config.lr_exposure,
                           "name": "exposure"})
        self.optimizer = torch.optim.Adam(groups, eps=1e-15) if groups else None
        self.pose_enabled = config.pose_refine
        self.exposure_enabled = config.exposure_compensation
        self.steps = 0

    @property
    def pose(self) -> Tensor:
        """[6] omega then tau."""
        return torch.cat([self.rotation, self.translation])

    def world_transform(self, viewmat: Tensor) -> WorldTransform:
        """The world motion that renders the corrected view through the given `viewmat` [4, 4]
        (world-to-camera): T = c2w @ D @ w2c (module docstring)."""
        viewmat = viewmat.to(self.rotation)
        rot_wc, t_wc = viewmat[:3, :3], viewmat[:3, 3]
        rot_cw = rot_wc.T
        omega, tau = self.rotation, self.translation
        # D rotates about the camera centre; in the world that is a rotation by R_cw omega.
        rot, quat = rotation_from_vector(rot_cw @ omega)
        rot_d = rot_wc @ rot @ rot_cw  # D's rotation, in camera axes
        # T x = R_cw (R_d (R_wc x + t_wc) + tau) - R_cw t_wc
        translation = rot_cw @ (rot_d @ t_wc + tau - t_wc)
        return WorldTransform(rot, quat, translation)

    def expose(self, rgb: Tensor) -> Tensor:
        """[H, W, 3] rendered colour -> as this view's camera exposed it."""
        return rgb * torch.exp(self.exposure[:3]) + self.exposure[3:]

    def step(self) -> None:
        if self.optimizer is None:
            return
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.steps += 1

    @torch.no_grad()
    def corrected_viewmat(self, viewmat: Tensor) -> Tensor:
        """[4, 4] world-to-camera of the corrected pose (for keyframe tests and reports)."""
        rot, _ = rotation_from_vector(self.rotation)
        delta = torch.eye(4, device=viewmat.device, dtype=viewmat.dtype)
        delta[:3, :3] = rot.to(viewmat)
        delta[:3, 3] = self.translation.to(viewmat)
        return delta @ viewmat

    def summary(self) -> dict:
        """The correction in plain numbers: rotation (degrees), translation (mm), gains."""
        pose = self.pose.detach().cpu().numpy().astype(float)
        exposure = self.exposure.detach().cpu().numpy().astype(float)
        return {"rotation_deg": round(float(np.degrees(np.linalg.norm(pose[:3]))), 4),
                "translation_mm": round(float(np.linalg.norm(pose[3:]) * 1000), 3),
                "pose": [round(v, 7) for v in pose.tolist()],
                "gain": [round(v, 4) for v in np.exp(exposure[:3]).tolist()],
                "offset": [round(v, 4) for v in exposure[3:].tolist()]}

    def state(self) -> dict:
        return {"rotation": self.rotation.detach().cpu(),
                "translation": self.translation.detach().cpu(),
                "exposure": self.exposure.detach().cpu(),
                "steps": self.steps,
                "optimizer": None if self.optimizer is None else self.optimizer.state_dict()}

    def load_state(self, state: dict) -> None:
        with torch.no_grad():
            self.rotation.copy_(state["rotation"])
            self.translation.copy_(state["translation"])
            self.exposure.copy_(state["exposure"])
        self.steps = int(state.get("steps", 0))
        if self.optimizer is not None and state.get("optimizer") is not None:
            try:
                self.optimizer.load_state_dict(state["optimizer"])
            except ValueError:  # saved with other switches: keep the values, restart Adam
                pass
