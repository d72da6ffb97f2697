"""The application layer: what the `cgc` command does with the engine, on files.

- `run_folder`: a training run on disk (RUN/), `train_scene` and `load_run`;
- `masks`: the training segment maps, from a folder or the mask source, cached in RUN/masks/;
- `prompts`: pixel prompts to masks through rendered feature maps;
- `evaluate`: mIoU / mBIoU on LERF-Mask-layout ground truth;
- `pictures`: colour, feature PCA and mask overlays of one frame;
- `demo`: the main job (synth -> train -> eval -> pictures);
- `cli`: the `cgc` command.

The engine (`cgc_core.data`, `model`, `render`, `losses`, `train`, `query`) knows nothing of this
layer; the ROS node uses the engine directly.
"""
