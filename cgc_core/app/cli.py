"""The `cgc` command: the engine offline, without ROS.

    cgc synth OUT [--seed S]                          built-in synthetic scene (S // 100: family)
    cgc train SCENE --out RUN [--masks DIR] [--iterations N] [--config YAML] [--resume]
    cgc stream SCENE --out RUN [--masks DIR] [--rate FPS] [--iterations N] [--config YAML]
                     [--iterations-per-frame N]
    cgc segment RUN --prompts PROMPTS.json --out DIR [--threshold T]
    cgc eval RUN [--threshold T] [--json FILE]
    cgc render RUN --frame NAME --out DIR
    cgc demo OUT                                     synth -> train -> eval -> render
    cgc objects RUN [--json] [--config YAML]         the object table (RUN/objects.json)
    cgc extract RUN (--text T | --frame F --point U V | --id N) --out OBJ.ply
                [--splats OBJ_SPLAT.ply] [--render-frame F --render-out PNG] [--view F]
    cgc label RUN ID TEXT                            name an object

Bad arguments, missing files and a scene without poses print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from cgc_core.config import CGCConfig

EXIT_USAGE = 2
CONFIG_HELP = ("YAML overriding the run's config field by field (e.g. objects.grounding, "
               "objects.dino_path)")


def _config(args) -> CGCConfig:
    from cgc_core.app.config_file import load_config
    from cgc_core.config import apply_overrides
    config = load_config(getattr(args, "config", None))
    train = {}
    if getattr(args, "iterations", None) is not None:
        if args.iterations <= 0:
            raise ValueError("--iterations must be positive")
        train["iterations"] = args.iterations
    if getattr(args, "seed", None) is not None:
        train["seed"] = args.seed
    if getattr(args, "device", None):
        train["device"] = args.device
    return apply_overrides(config, {"train": train})


def _threshold(args, config) -> float:
    t = config.query.threshold if args.threshold is None else args.threshold
    if not -1.0 <= t <= 1.0:
        raise ValueError(f"--threshold must lie in [-1, 1], got {t}")
    return t


def cmd_synth(args) -> None:
    from cgc_core.data.synth import synth_command
    synth_command(Path(args.out), seed=args.seed, exact_sensor=args.exact_sensor,
                  distortion=_distortion(args.distortion))


def _distortion(text: str | None) -> tuple[float, ...] | None:
    """`--distortion k1,k2[,p1,p2[,k3]]` -> OpenCV coefficients, or None."""
    if not text:
        return None
    try:
        values = tuple(float(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"--distortion wants comma-separated numbers k1,k2[,p1,p2[,k3]], "
                         f"got {text!r}") from None
    if not 1 <= len(values) <= 5:
        raise ValueError(f"--distortion takes 1 to 5 coefficients (k1,k2,p1,p2,k3), got "
                         f"{len(values)}")
    return values


def cmd_train(args) -> None:
    from cgc_core.app.run_folder import train_scene
    masks = Path(args.masks) if args.masks else None
    if masks is not None and not masks.is_dir():
        raise FileNotFoundError(f"masks folder not found: {masks}")
    train_scene(Path(args.scene), Path(args.out), config=_config(args), masks_dir=masks,
                resume=args.resume, progress=not args.quiet)


def cmd_stream(args) -> None:
    from cgc_core.app.stream import stream_scene
    masks = Path(args.masks) if args.masks else None
    if masks is not None and not masks.is_dir():
        raise FileNotFoundError(f"masks folder not found: {masks}")
    if args.eval_every < 0:
        raise ValueError("--eval-every must be 0 (off) or positive")
    stream_scene(Path(args.scene), Path(args.out), config=_config(args), masks_dir=masks,
                 rate=args.rate, iterations=args.iterations, eval_every=args.eval_every,
                 iterations_per_frame=args.iterations_per_frame, progress=not args.quiet)


def cmd_segment(args) -> None:
    from cgc_core.app.run_folder import load_run
    from cgc_core.data.ground_truth import load_prompts
    from cgc_core.io import write_label_png
    from cgc_core.service.query import segment_prompts
    run = load_run(Path(args.run))
    prompts = load_prompts(Path(args.prompts))
    for prompt in prompts:
        if prompt.frame not in {c.name for c in run.scene.cameras}:
            raise ValueError(f"{args.prompts}: prompt '{prompt.id}' names unknown frame "
                             f"'{prompt.frame}'")
    masks = segment_prompts(run.splats, run.scene, prompts, run.config.render, run.config.query,
                            _threshold(args, run.config), run.config.objects)
    out = Path(args.out)
    for prompt_id, mask in masks.items():
        write_label_png(out / f"{prompt_id}.png", mask.astype(np.uint8) * 255)
        print(f"{prompt_id}: {int(mask.sum())} pixels -> {out / (prompt_id + '.png')}")


def cmd_eval(args) -> None:
    from cgc_core.app.evaluate import colour_quality, evaluate_run
    from cgc_core.app.run_folder import load_run, run_resolution
    from cgc_core.data.ground_truth import load_gt_masks
    from cgc_core.io import write_json
    from cgc_core.metrics import format_table
    run = load_run(Path(args.run))
    if not run.scene.test_names:
        raise ValueError(f"{args.run}: no test views to evaluate on (a map the node saved keeps "
                         "only its keyframes, without ground truth)")
    colour = colour_quality(run.splats, run.scene, run.config.render, run_resolution(run))
    if load_gt_masks(run.scene.root):
        results = evaluate_run(run.splats, run.scene, run.config.render,
                               _threshold(args, run.config), run.config.query, run.config.objects)
        print(format_table(results))
    else:
        results = {}
        print(f"{run.scene.root}: no test_mask/ ground truth: colour quality only")
    results["colour"] = colour
    width, height = colour["resolution"]
    print(f"held-out colour ({colour['views']} views at {width}x{height}, neutral exposure): "
          f"PSNR {colour['psnr']:.2f} dB, SSIM {colour['ssim']:.3f}")
    if args.json:
        write_json(Path(args.json), results)


def cmd_render(args) -> None:
    from cgc_core.app.pictures import write_frame_renders
    from cgc_core.app.run_folder import load_run
    run = load_run(Path(args.run))
    if args.frame not in {c.name for c in run.scene.cameras}:
        known = ", ".join(c.name for c in run.scene.cameras[:5])
        raise ValueError(f"unknown frame '{args.frame}' (frames look like: {known}, ...)")
    for path in write_frame_renders(run, args.frame, Path(args.out)):
        print(path)


def cmd_demo(args) -> None:
    from cgc_core.app.demo import run_demo
    run_demo(Path(args.out), seed=args.seed, iterations=args.iterations)


def _run_for_objects(args):
    """The run, its stored config overridden by --config (objects.grounding, weight paths)."""
    from cgc_core.app.config_file import read_overrides
    from cgc_core.app.run_folder import load_run
    from cgc_core.config import apply_overrides
    run = load_run(Path(args.run))
    if args.config:  # a YAML of sections, or the node's config/cgc.yaml
        data = read_overrides(Path(args.config))
        apply_overrides(run.config, data)
    return run


def cmd_objects(args) -> None:
    import json

    from cgc_core.app.objects import format_object_table, table_json
    from cgc_core.objects import run_objects
    run = _run_for_objects(args)
    table = run_objects(run.root, run.splats, run.config.objects)
    if args.json:
        print(json.dumps(table_json(table), indent=2))
    else:
        print(format_object_table(table))


def cmd_extract(args) -> None:
    from cgc_core.app.objects import extract_from_run, write_extraction
    if (args.frame is None) != (args.point is None):
        raise ValueError("--frame and --point go together")
    if (args.render_frame is None) != (args.render_out is None):
        raise ValueError("--render-frame and --render-out go together")
    run = _run_for_objects(args)
    point = None if args.point is None else (args.point[0], args.point[1])
    view = args.view or args.render_frame or args.frame
    done = extract_from_run(run, text=args.text, frame=args.frame, point=point,
                            object_id=args.id, view=view, threshold=args.threshold)
    paths = write_extraction(run, done.object, Path(args.out),
                             splats_out=Path(args.splats) if args.splats else None,
                             render_frame=args.render_frame,
                             render_out=Path(args.render_out) if args.render_out else None)
    print(f"{done.description}: {len(done.object.points)} points, "
          f"{int(done.object.mask.sum())} Gaussians")
    for path in paths:
        print(path)


def cmd_label(args) -> None:
    from cgc_core.app.objects import label_in_run
    run = _run_for_objects(args)
    label_in_run(run, args.id, args.text)
    print(f"object {args.id}: {args.text.strip()}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="cgc", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "synth", help="write a built-in synthetic scene (pybullet, CPU, seconds)",
        description="Write a built-in synthetic scene (pybullet, CPU, seconds). The seed picks "
                    "the scene family (seed // 100): 0-99 tabletop, 100-199 small objects, "
                    "200-299 wide views of a room, 300-399 objects the masks always split, "
                    "400-499 crowded objects the masks often merge; what a robot sees: "
                    "500-599 clutter, 600-699 pose error, 700-799 exposure drift and noise, "
                    "800-899 depth noise and holes, 900-999 low views, 1000-1099 all of these; "
                    "1100-1199 a table changed between two passes (one object removed, one "
                    "moved, one added).")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0,
                   help="0-1199; family = seed // 100: 0 tabletop, 1 small, 2 wide, 3 split, "
                        "4 merges, 5 clutter, 6 pose, 7 photometric, 8 depth_noise, 9 low, "
                        "10 robot, 11 changes (default 0)")
    p.add_argument("--exact-sensor", action="store_true",
                   help="the same scene without its pose, image and depth corruptions "
                        "(pose, photometric, depth_noise, robot): shows what they cost")
    p.add_argument("--distortion", metavar="K1,K2[,P1,P2[,K3]]",
                   help="render through an OpenCV lens with these coefficients (images, depth, "
                        "masks and ground truth all distorted; transforms.json and the COLMAP "
                        "model carry them), e.g. -0.25,0.08")
    p.set_defaults(func=cmd_synth)

    p = sub.add_parser("train", help="train a CGC model on a posed scene")
    p.add_argument("scene", help="folder with transforms.json or sparse/0, and images/")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--masks", help="precomputed segment PNGs (one per image stem); default: "
                                   "run the configured mask source")
    p.add_argument("--iterations", type=int, help="default: per device (see config)")
    p.add_argument("--config", help="YAML overriding config/cgc.yaml defaults field by field")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--resume", action="store_true", help="continue from RUN/checkpoint.pt")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser(
        "stream", help="play a scene's views into the live engine as a camera would, then train",
        description="Play the scene's training views in file order, FPS frames a second, into a "
                    "live session that picks keyframes, grows and trains as they come; then "
                    "train on to N iterations in all. Writes RUN/ as `cgc train` does, plus "
                    "RUN/stream.json (keyframe timings, removals, held-out mIoU along the way), "
                    "RUN/events.jsonl (objects that appeared, moved or were removed) and "
                    "RUN/objects.json.")
    p.add_argument("scene", help="folder with transforms.json or sparse/0, and images/")
    p.add_argument("--out", required=True, help="run folder to write")
    p.add_argument("--masks", help="the frames' segments as PNGs (one per image stem); default: "
                                   "the configured mask source, in a worker")
    p.add_argument("--rate", type=float, default=1.0, help="frames per second (default 1)")
    p.add_argument("--iterations", type=int, help="in all; default: what `cgc train` would run")
    p.add_argument("--config", help="YAML overriding config/cgc.yaml defaults field by field")
    p.add_argument("--seed", type=int)
    p.add_argument("--device", help="auto, cpu, cuda, cuda:1 ...")
    p.add_argument("--eval-every", type=float, default=30.0,
                   help="seconds between held-out mIoU samples when the scene has ground truth "
                        "(0: none; default 30)")
    p.add_argument("--iterations-per-frame", type=int, default=0, metavar="N",
                   help="hold each frame back until the session has trained N iterations per "
                        "frame sent: the pace of a machine that trains that fast (default 0: "
                        "frames go at --rate, whatever the training does)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.set_defaults(func=cmd_stream)

    p = sub.add_parser("segment", help="masks for pixel prompts")
    p.add_argument("run")
    p.add_argument("--prompts", required=True, help='JSON list of {"id", "frame", "point": [u, v]}')
    p.add_argument("--out", required=True)
    p.add_argument("--threshold", type=float,
                   help="cosine threshold t of Eq. 6 (default: query.threshold; paper 0.7)")
    p.set_defaults(func=cmd_segment)

    p = sub.add_parser("eval", help="mIoU / mBIoU on the scene's test_mask/, PSNR / SSIM of "
                                    "the held-out views")
    p.add_argument("run")
    p.add_argument("--threshold", type=float)
    p.add_argument("--json", help="also write the results as JSON")
    p.set_defaults(func=cmd_eval)

    p = sub.add_parser("render", help="colour, feature PCA and mask overlays of one frame")
    p.add_argument("run")
    p.add_argument("--frame", required=True, help="image stem of a scene frame")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("demo", help="offline demo: synth -> train -> eval -> render, one folder")
    p.add_argument("out")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--iterations", type=int)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("objects", help="cluster the model into objects and list them")
    p.add_argument("run")
    p.add_argument("--json", action="store_true", help="print the table as JSON")
    p.add_argument("--config", help=CONFIG_HELP)
    p.set_defaults(func=cmd_objects)

    p = sub.add_parser("extract", help="one object's point cloud (and Gaussians, and a render)")
    p.add_argument("run")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument("--text", help='a text query, e.g. "the red one", "the largest object"')
    how.add_argument("--frame", help="frame of a pixel prompt (with --point)")
    how.add_argument("--id", type=int, help="an object id of `cgc objects`")
    p.add_argument("--point", type=float, nargs=2, metavar=("U", "V"),
                   help="pixel prompt: column and row in --frame")
    p.add_argument("--out", required=True, help="PLY (or .pcd) point cloud to write")
    p.add_argument("--splats", help="also write the object's Gaussians as a 3DGS PLY")
    p.add_argument("--render-frame", help="render the object alone in this frame ...")
    p.add_argument("--render-out", help="... to this PNG")
    p.add_argument("--view", help="frame that position words (left, nearest) refer to "
                                  "(default: --render-frame)")
    p.add_argument("--threshold", type=float,
                   help="cosine threshold of the object's Gaussians' own features "
                        "(default: query.selection_threshold)")
    p.add_argument("--config", help=CONFIG_HELP)
    p.set_defaults(func=cmd_extract)

    p = sub.add_parser("label", help="name an object (stored in RUN/objects.json)")
    p.add_argument("run")
    p.add_argument("id", type=int)
    p.add_argument("text")
    p.add_argument("--config", help=CONFIG_HELP)
    p.set_defaults(func=cmd_label)
    return parser


def _one_line_warning(message, category, filename, lineno, line=None) -> str:
    """Warnings as a user reads them ("cgc: warning: ..."), not as source locations."""
    return f"cgc: warning: {message}\n"


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import warnings

    from cgc_core.io import DataError
    formatwarning, warnings.formatwarning = warnings.formatwarning, _one_line_warning
    try:
        args.func(args)
    except (DataError, ValueError, FileNotFoundError, NotADirectoryError) as error:
        print(f"cgc {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print(f"cgc {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = formatwarning  # main() also runs inside other programs
    return 0


if __name__ == "__main__":
    sys.exit(main())
