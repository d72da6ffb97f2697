"""Pictures of a trained fox run, for judging its features by eye: per held-out frame, the colour
render and the feature PCA render side by side (with `--photo`, the undistorted photo first),
one row per frame.

The renders are `cgc render RUN --frame F` (colour.png and features_pca.png at the camera's
full size); this script only tiles them and scales each panel to `--side` px on its longer side,
so the picture is what a user of `cgc render` sees. The photos stay out of the default picture:
they are not ours to commit (NVIDIA Source Code License). The fox capture has no
ground-truth masks: whether the fox, its mount, the picture frame and the wall come out as
separate regions is judged on this picture.

    .venv/bin/python bench/bench_fox_pictures.py --run RUN [--frames 0042,0073] [--side 480]
        [--photo] [--out bench/results/fox_features_pca.png]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cgc_core.app.run_folder import load_run  # noqa: E402

GAP = 6  # px of white between panels, so the PCA's edges are not read as the next panel's


def cgc_render(run_dir: Path, frame: str, out: Path) -> tuple[np.ndarray, np.ndarray]:
    """([H, W, 3] colour, [H, W, 3] feature PCA) uint8 of `frame`, written by `cgc render`."""
    subprocess.run([sys.executable, "-m", "cgc_core.app.cli", "render", str(run_dir),
                    "--frame", frame, "--out", str(out)], check=True, cwd=ROOT,
                   stdout=subprocess.DEVNULL)
    return (np.asarray(Image.open(out / f"{frame}_colour.png").convert("RGB")),
            np.asarray(Image.open(out / f"{frame}_features_pca.png").convert("RGB")))


def panel(image: np.ndarray, side: int) -> np.ndarray:
    """[H, W, 3] uint8 scaled (box filter) so its longer side is `side`."""
    height, width = image.shape[:2]
    scale = side / max(height, width)
    size = (round(width * scale), round(height * scale))
    return np.asarray(Image.fromarray(image).resize(size, Image.BOX))


def row(panels: list[np.ndarray]) -> np.ndarray:
    """Panels of one height side by side, GAP px of white between them."""
    height = panels[0].shape[0]
    gap = np.full((height, GAP, 3), 255, np.uint8)
    parts = [p for pair in zip(panels, [gap] * len(panels)) for p in pair][:-1]
    return np.concatenate(parts, axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--frames", default="",
                        help="comma-separated frame stems (default: every held-out view)")
    parser.add_argument("--side", type=int, default=480)
    parser.add_argument("--photo", action="store_true",
                        help="the undistorted photo first (for looking, not for committing)")
    parser.add_argument("--out", type=Path,
                        default=ROOT / "bench" / "results" / "fox_features_pca.png")
    args = parser.parse_args()
    run = load_run(args.run)
    frames = args.frames.split(",") if args.frames else run.scene.test_names
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for frame in frames:
            colour, pca = cgc_render(args.run, frame, Path(tmp))
            images = [run.scene.load_image(frame)] if args.photo else []
            rows.append(row([panel(image, args.side) for image in images + [colour, pca]]))
            print(f"{frame}: {'photo | ' if args.photo else ''}colour | feature PCA", flush=True)
    gap = np.full((GAP, rows[0].shape[1], 3), 255, np.uint8)
    picture = np.concatenate([p for pair in zip(rows, [gap] * len(rows)) for p in pair][:-1])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(args.out)
    print(args.out)


if __name__ == "__main__":
    main()
