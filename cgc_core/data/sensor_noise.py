"""What a robot's sensors and SLAM do to a perfect scene: pose error, exposure drift and image
noise, depth noise and holes (the robot-condition families of `cgc_core.data.synth`).

Small pure functions on numpy arrays; every one takes its own `np.random.Generator` so that each
corruption is an independent, reproducible draw (synth derives one stream per condition and view
from the seed). Nothing here touches ground truth.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def rotation_from_vector(omega: np.ndarray) -> np.ndarray:
    """[3] axis-angle vector (radians) → [3, 3] rotation matrix (Rodrigues)."""
    omega = np.asarray(omega, dtype=np.float64)
    angle = float(np.linalg.norm(omega))
    if angle < 1e-15:
        return np.eye(3)
    k = omega / angle
    cross = np.array([[0.0, -k[2], k[1]], [k[2], 0.0, -k[0]], [-k[1], k[0], 0.0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


def perturb_pose(c2w: np.ndarray, rot_deg: float, trans_m: float,
                 rng: np.random.Generator) -> np.ndarray:
    """A [4, 4] camera-to-world with SLAM-like error: a rotation about the camera centre and a
    shift of the centre, each in a uniformly random direction.

    Both errors are isotropic Gaussian vectors with `rot_deg / sqrt(3)` (resp. `trans_m /
    sqrt(3)`) per axis, so the root-mean-square rotation angle is `rot_deg` and the RMS shift of
    the camera centre is `trans_m` (metres); their medians are about 0.89 of those. The rotation
    turns the camera about its own centre (right-multiplied in the camera frame), so the centre
    moves only by the shift.
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    omega = rng.normal(0.0, np.radians(rot_deg) / np.sqrt(3), size=3)
    shift = rng.normal(0.0, trans_m / np.sqrt(3), size=3)
    out = c2w.copy()
    out[:3, :3] = c2w[:3, :3] @ rotation_from_vector(omega)
    out[:3, 3] = c2w[:3, 3] + shift
    return out


def pose_error(c2w: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(rotation error in degrees, camera-centre error in metres) of a [4, 4] camera-to-world
    against the true one."""
    c2w, truth = np.asarray(c2w, dtype=np.float64), np.asarray(truth, dtype=np.float64)
    relative = truth[:3, :3].T @ c2w[:3, :3]
    # atan2 of the angle's sine and cosine: accurate for the tiny angles arccos loses.
    sin = np.linalg.norm([relative[2, 1] - relative[1, 2], relative[0, 2] - relative[2, 0],
                          relative[1, 0] - relative[0, 1]]) / 2
    angle = np.degrees(np.arctan2(sin, (np.trace(relative) - 1) / 2))
    return float(angle), float(np.linalg.norm(c2w[:3, 3] - truth[:3, 3]))


def exposure_and_noise(rgb: np.ndarray, rng: np.random.Generator, exposure: float = 0.0,
                       white_balance: float = 0.0, noise_sigma: float = 0.0
                       ) -> tuple[np.ndarray, dict]:
    """[H, W, 3] uint8 image → (the image as a camera with auto-exposure would give it, uint8;
    {"gain": g, "white_balance": [3]} drawn).

    One exposure gain per image, uniform in [1 - exposure, 1 + exposure]; one white-balance
    factor per channel, uniform in [1 - white_balance, 1 + white_balance]; then Gaussian sensor
    noise of `noise_sigma` grey levels (of 255) per pixel and channel, rounded and clipped to
    0..255.
    """
    gain = float(rng.uniform(1 - exposure, 1 + exposure))
    balance = rng.uniform(1 - white_balance, 1 + white_balance, size=3)
    out = np.asarray(rgb, dtype=np.float64) * (gain * balance)
    if noise_sigma > 0:
        out = out + rng.normal(0.0, noise_sigma, size=out.shape)
    image = np.clip(np.round(out), 0, 255).astype(np.uint8)
    return image, {"gain": gain, "white_balance": balance.tolist()}


def depth_noise(depth: np.ndarray, rng: np.random.Generator, sigma_at_1m: float = 0.0,
                hole_fraction: float = 0.0, edge_jump: float = 0.02) -> np.ndarray:
    """[H, W] float z-depth in metres (0 = invalid) → the same as a structured-light / stereo
    sensor gives it: Gaussian noise of σ(z) = sigma_at_1m · z² and holes (0) on
    `hole_fraction` of the valid pixels.

    Holes are partly clustered, as on real sensors: about a third along depth edges (pixels next
    to a jump of more than `edge_jump` m, where stereo matching fails), about a third in small
    blobs (discs of radius 1-3 pixels), the rest single random pixels; the count is exact (rounded
    `hole_fraction` × valid pixels). Noisy depths stay at least 1 mm.
    """
    depth = np.asarray(depth, dtype=np.float64)
    valid = depth > 0
    out = depth.copy()
    if sigma_at_1m > 0:
        noise = rng.normal(0.0, 1.0, size=depth.shape) * sigma_at_1m * depth ** 2
        out = np.where(valid, np.maximum(depth + noise, 1e-3), 0.0)
    target = int(round(hole_fraction * valid.sum()))
    if target == 0:
        return out.astype(np.float32)
    holes = np.zeros_like(valid)
    # Depth edges: a jump to a neighbour (4-connected) larger than edge_jump.
    jump = np.zeros_like(valid)
    dz_rows = np.abs(np.diff(depth, axis=0)) > edge_jump
    dz_cols = np.abs(np.diff(depth, axis=1)) > edge_jump
    jump[:-1] |= dz_rows
    jump[1:] |= dz_rows
    jump[:, :-1] |= dz_cols
    jump[:, 1:] |= dz_cols
    edge = np.flatnonzero(jump & valid)
    if len(edge):
        holes.flat[rng.choice(edge, size=min(len(edge), target // 3), replace=False)] = True
    # Blobs: discs around random valid pixels until about two thirds of the holes are made.
    flat_valid = np.flatnonzero(valid)
    height, width = depth.shape
    while (holes & valid).sum() < 2 * target // 3:
        centre = int(rng.choice(flat_valid))
        row, col = divmod(centre, width)
        radius = int(rng.integers(1, 4))
        rows, cols = np.ogrid[-row:height - row, -col:width - col]
        holes |= rows ** 2 + cols ** 2 <= radius ** 2
    holes &= valid
    count = int(holes.sum())
    if count > target:  # the last blob overshot: fill random holes back in
        drop = rng.choice(np.flatnonzero(holes), size=count - target, replace=False)
        holes.flat[drop] = False
    elif count < target:
        free = np.flatnonzero(valid & ~holes)
        holes.flat[rng.choice(free, size=min(len(free), target - count), replace=False)] = True
    out[holes] = 0.0
    return out.astype(np.float32)


def hole_clusters(holes: np.ndarray) -> np.ndarray:
    """[H, W] bool holes → [K] sizes (pixels) of their 8-connected clusters (tests, benches)."""
    labels, count = ndimage.label(holes, structure=np.ones((3, 3)))
    return np.bincount(labels.ravel())[1:] if count else np.zeros(0, dtype=np.int64)
