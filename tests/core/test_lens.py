"""Lens distortion (cgc_core.lens) against the lens models written out here, independently of
OpenCV: undistortion, the way back to the raw grid, prompts, CameraInfo, and a built-in scene
rendered through a lens."""

from types import SimpleNamespace as NS

import numpy as np
import pytest
import torch

from cgc_core.cameras import Camera
from cgc_core.data.messages import ConversionError, camera_info_fields, camera_info_to_camera
from cgc_core.lens import (
    _undistort_maps,
    cover_camera,
    make_lens,
    pinhole_to_raw,
    raw_to_cover,
    render_on_raw,
    to_raw,
    undistort,
    undistorted_camera,
)

W, H, F = 160, 120, 140.0
K1, K2, P1, P2 = -0.25, 0.08, 0.002, -0.001


def brown_conrady(x, y):
    """OpenCV's (k1, k2, p1, p2) model, written out: undistorted -> distorted normalised."""
    r2 = x * x + y * y
    radial = 1 + K1 * r2 + K2 * r2 * r2
    return (x * radial + 2 * P1 * x * y + P2 * (r2 + 2 * x * x),
            y * radial + P1 * (r2 + 2 * y * y) + 2 * P2 * x * y)


def invert(model, xd, yd, iterations=200):
    """Undistorted normalised coordinates of distorted ones, by fixed-point iteration."""
    x, y = xd.copy(), yd.copy()
    for _ in range(iterations):
        fx, fy = model(x, y)
        x, y = x + (xd - fx), y + (yd - fy)
    return x, y


def raw_camera():
    return Camera("raw", W, H, F, F * 1.01, 81.0, 59.0, np.eye(4))


@pytest.fixture
def camera():
    raw = raw_camera()
    lens = make_lens("opencv", [K1, K2, P1, P2], W, H, raw.fx, raw.fy, raw.cx, raw.cy)
    return undistorted_camera(raw, lens)


def pixel_grid(width, height):
    return np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)


def raw_pattern(u, v):
    return np.sin(u / 6.0) + np.cos(v / 4.0) + 0.01 * u


def test_undistorted_image_is_the_raw_image_seen_through_the_lens_model(camera):
    u, v = pixel_grid(W, H)
    raw = raw_pattern(u, v).astype(np.float32)
    out = undistort(camera, raw)
    # Each pinhole pixel shows the raw image where the lens model puts its ray.
    xd, yd = brown_conrady((u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy)
    expected = raw_pattern(F * xd + 81.0, F * 1.01 * yd + 59.0)
    assert np.abs(out - expected).max() < 0.03
    # Every pinhole pixel has a raw pixel behind it: no black border to train on.
    map_x, map_y = _undistort_maps((camera.lens, W, H, camera.fx, camera.fy, camera.cx,
                                    camera.cy))
    assert map_x.min() >= -0.5 and map_x.max() <= W - 0.5
    assert map_y.min() >= -0.5 and map_y.max() <= H - 0.5


def test_ids_and_depth_are_copied_never_blended(camera):
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 50, size=(H, W)).astype(np.int32)
    out = undistort(camera, ids, nearest=True)
    assert out.dtype == np.int32 and set(np.unique(out)) <= set(np.unique(ids))


def test_renders_go_back_onto_the_raw_grid(camera):
    cover = cover_camera(camera)
    assert cover.width > W and cover.height > H and cover.lens is None
    uc, vc = pixel_grid(cover.width, cover.height)

    def pattern(u, v):
        return np.sin(u / 9.0) * np.cos(v / 7.0)

    values = torch.tensor(np.stack([pattern(uc, vc), uc], -1), dtype=torch.float32)
    out = to_raw(camera, values).numpy()
    assert out.shape == (H, W, 2)
    u, v = pixel_grid(W, H)
    x, y = invert(brown_conrady, (u - 81.0) / F, (v - 59.0) / (F * 1.01))
    cu, cv = camera.fx * x + cover.cx, camera.fy * y + cover.cy
    assert np.abs(out[..., 0] - pattern(cu, cv)).max() < 0.01
    assert np.abs(out[..., 1] - cu).max() < 0.02  # a linear ramp resamples exactly
    # The same at half the cover's resolution (a render scaled down, as ~/segmentation does).
    half = torch.tensor(pattern(*pixel_grid(cover.width // 2, cover.height // 2)) * 0)
    assert to_raw(camera, half, nearest=True).shape == (H, W)
    # A prompt on the raw image lands on the same ray in the cover view.
    pu, pv = raw_to_cover(camera, 12.5, 100.5)
    px, py = invert(brown_conrady, np.array([(12.5 - 81.0) / F]),
                    np.array([(100.5 - 59.0) / (F * 1.01)]))
    assert pu == pytest.approx(camera.fx * px[0] + cover.cx, abs=1e-4)
    assert pv == pytest.approx(camera.fy * py[0] + cover.cy, abs=1e-4)
    assert pinhole_to_raw(camera, pu - (cover.cx - camera.cx),
                          pv - (cover.cy - camera.cy)) == pytest.approx((12.5, 100.5), abs=1e-4)


def test_render_on_raw_of_a_pinhole_camera_is_the_render_itself():
    pinhole = raw_camera()
    seen = []
    out = render_on_raw(pinhole, lambda cam: seen.append(cam) or torch.zeros(cam.height,
                                                                             cam.width))
    assert seen == [pinhole] and out.shape == (H, W)


def test_fisheye_model():
    k = (0.05, -0.02, 0.004, -0.001)
    raw = raw_camera()
    lens = make_lens("fisheye", k, W, H, raw.fx, raw.fy, raw.cx, raw.cy)
    camera = undistorted_camera(raw, lens)
    u, v = pixel_grid(W, H)
    x, y = (u - camera.cx) / camera.fx, (v - camera.cy) / camera.fy
    r = np.hypot(x, y)
    theta = np.arctan(r)
    theta_d = theta * (1 + k[0] * theta**2 + k[1] * theta**4 + k[2] * theta**6
                       + k[3] * theta**8)
    scale = np.where(r > 0, theta_d / np.maximum(r, 1e-12), 1.0)
    expected = raw_pattern(F * x * scale + 81.0, F * 1.01 * y * scale + 59.0)
    out = undistort(camera, raw_pattern(u, v).astype(np.float32))
    assert np.abs(out - expected).max() < 0.03


def test_zero_distortion_costs_nothing_and_bad_models_are_refused():
    assert make_lens("opencv", [0, 0, 0, 0, 0], W, H, F, F, 80, 60) is None
    pinhole = raw_camera()
    image = np.zeros((H, W, 3), np.uint8)
    assert undistort(pinhole, image) is image
    with pytest.raises(ValueError, match="unknown lens model"):
        make_lens("division", [0.1], W, H, F, F, 80, 60)
    with pytest.raises(ValueError, match="4 coefficients"):
        make_lens("fisheye", [0.1, 0.2], W, H, F, F, 80, 60)


def camera_info(d, model="plumb_bob"):
    return NS(width=W, height=H, k=[F, 0, 81.0, 0, F * 1.01, 59.0, 0, 0, 1],
              p=[100.0, 0, 80.0, 0, 0, 101.0, 60.0, 0, 0, 0, 1, 0], d=d, distortion_model=model)


def test_camera_info_distortion_models():
    camera = camera_info_to_camera(camera_info([K1, K2, P1, P2, 0.0]), np.eye(4))
    assert camera.lens.model == "opencv" and camera.lens.coeffs == (K1, K2, P1, P2, 0.0)
    assert (camera.width, camera.height) == (W, H)
    rational = camera_info_to_camera(camera_info([K1, K2, P1, P2, 0, 0.1, 0, 0],
                                                 "rational_polynomial"), np.eye(4))
    assert len(rational.lens.coeffs) == 8
    fisheye = camera_info_to_camera(camera_info([0.05, -0.02, 0.004, -0.001], "equidistant"),
                                    np.eye(4))
    assert fisheye.lens.model == "fisheye"
    assert camera_info_to_camera(camera_info([0.0] * 5), np.eye(4)).lens is None
    rect = camera_info_to_camera(camera_info([K1, K2, P1, P2, 0.0]), np.eye(4), rectified=True)
    assert rect.lens is None and (rect.fx, rect.fy, rect.cx, rect.cy) == (100, 101, 80, 60)
    with pytest.raises(ConversionError, match="distortion_model 'fov'"):
        camera_info_to_camera(camera_info([0.1], "fov"), np.eye(4))
    # A camera with a lens is sent as its raw K and D, and read back the same.
    fields = camera_info_fields(camera)
    again = camera_info_to_camera(NS(**fields), np.eye(4))
    assert again.lens == camera.lens and again.fx == pytest.approx(camera.fx)


def test_node_frames_are_undistorted_on_arrival():
    import collections

    from cgc_core.service.buffers import DropOldestQueue, RateLimitedLog, StampBuffer
    from cgc_core.service.frames import FrameInputs, FrameIntake
    from cgc_core.service.settings import NodeSettings, node_parameters

    values = {p.name: p.default for p in node_parameters()}
    values.update(pose_source="topic", map_directory="/tmp/none")
    inputs = FrameInputs(frames=DropOldestQueue(8), camera_info=StampBuffer(),
                         depth=StampBuffer(), pose=StampBuffer(), segments=StampBuffer(),
                         clock=lambda: 1000.0)
    intake = FrameIntake(NodeSettings(**values), inputs, collections.Counter(),
                         RateLimitedLog(lambda m: None), collections.deque())
    u, v = pixel_grid(W, H)
    rgb = (np.stack([u, v, u + v], -1) % 256).astype(np.uint8)
    head = NS(stamp=NS(sec=1, nanosec=0), frame_id="cam")
    image = NS(header=head, width=W, height=H, encoding="rgb8", is_bigendian=0, step=3 * W,
               data=rgb.tobytes())
    ids = np.repeat(np.arange(W, dtype=np.uint16)[None] % 7 + 1, H, axis=0)
    segments = NS(header=head, width=W, height=H, encoding="mono16", is_bigendian=0, step=2 * W,
                  data=ids.tobytes())
    pose = NS(header=NS(stamp=head.stamp, frame_id="map"),
              pose=NS(position=NS(x=0.0, y=0.0, z=0.0),
                      orientation=NS(x=0.0, y=0.0, z=0.0, w=1.0)))
    info = camera_info([K1, K2, P1, P2, 0.0])
    frame = intake.decode(image, info, None, pose, segments)
    assert frame.camera.lens is not None
    np.testing.assert_array_equal(frame.rgb, undistort(frame.camera, rgb))
    np.testing.assert_array_equal(frame.segments, undistort(frame.camera, ids.astype(np.int32),
                                                            nearest=True))
    assert not np.array_equal(frame.rgb, rgb)


@pytest.mark.slow
def test_a_scene_rendered_through_a_lens_and_undistorted_matches_the_pinhole_render(tmp_path):
    import pybullet
    import pybullet_data

    from cgc_core.data import load_scene
    from cgc_core.data.synth import (
        _build_world,
        _instances_from_segmentation,
        _render,
        make_synthetic_scene,
        scene_family,
    )
    from cgc_core.io import read_label_png

    root = make_synthetic_scene(tmp_path / "s", seed=0, width=W, height=H, n_train=3, n_test=1,
                                distortion=(K1, K2))
    scene = load_scene(root)
    client = pybullet.connect(pybullet.DIRECT)
    try:  # the same world again (seeded as make_synthetic_scene seeds it), seen by a pinhole
        pybullet.setAdditionalSearchPath(pybullet_data.getDataPath(), physicsClientId=client)
        family = scene_family(0)
        world = _build_world(pybullet, client, np.random.default_rng([0, 0]), family.n_objects,
                             family, np.random.default_rng([0, 4]))
        for cam in scene.cameras[:3]:
            _, depth, seg = _render(pybullet, client, cam)
            truth = _instances_from_segmentation(seg, world.body_to_instance)
            raw = read_label_png(root / "instances" / f"{cam.name}.png")
            undistorted = scene.undistort_segments(cam, raw)
            agree, ignored = (undistorted == truth).mean(), (raw == truth).mean()
            assert agree > 0.985 and agree > ignored + 0.01, (agree, ignored)
            ours, depth = scene.load_depth(cam), np.where(truth > 0, depth, 0.0)
            close = np.abs(ours - depth) <= 0.02 * depth + 0.002  # grazing floor: 2 %
            assert close.mean() > 0.97, close.mean()
    finally:
        pybullet.disconnect(physicsClientId=client)


def test_a_prompt_and_its_mask_live_on_the_raw_image():
    """A model seen by a distorted camera: the prompt is a raw pixel, the mask is on the raw
    grid, and the object lies where the lens puts it (not where a pinhole would)."""
    from cgc_core.config import QueryConfig, RenderConfig
    from cgc_core.data.scene import Scene
    from cgc_core.model.gaussians import create_gaussians
    from cgc_core.service.query import FeatureCache, object_mask, pixel_object

    rng = np.random.default_rng(0)
    corner = rng.normal([0.5, 0.33, 1.0], 0.03, size=(300, 3))  # towards a corner
    rest = rng.normal([0.0, 0.0, 1.0], 0.03, size=(300, 3))
    splats = create_gaussians(np.concatenate([corner, rest]), None, feature_dim=4, sh_degree=0,
                              init_opacity=0.9, feature_init_std=1.0,
                              generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        splats["features"][:300] = torch.tensor([1.0, 0, 0, 0])
        splats["features"][300:] = torch.tensor([0, 1.0, 0, 0])
        splats["log_scales"][:] = np.log(0.02)
    raw = Camera("raw", W, H, F, F, 80.0, 60.0, np.eye(4))
    camera = undistorted_camera(raw, make_lens("opencv", [K1, K2, P1, P2], W, H, F, F, 80.0,
                                                60.0))
    scene = Scene(root=None, cameras=[camera], train_names=["raw"], test_names=[])
    render, query = RenderConfig(backend="reference"), QueryConfig(edge_radius=0)
    features = FeatureCache(splats, scene, render)
    assert features("raw").shape == (H, W, 4)
    # The corner blob's centre through the lens model written out (barrel: pulled inwards).
    xd, yd = brown_conrady(np.array(0.5), np.array(0.33))
    u, v = float(F * xd + 80.0), float(F * yd + 60.0)
    pinhole_u = F * 0.5 + 80.0
    assert u < pinhole_u - 3
    obj = pixel_object(splats, camera, u, v, render=render, query=query,
                       feature_map=features("raw"))
    mask = object_mask(obj, "raw", features, query, 0.7)
    assert mask.shape == (H, W) and mask[int(v), int(u)]
    rows, cols = np.nonzero(mask)
    assert abs(cols.mean() - u) < 3 and abs(rows.mean() - v) < 3
