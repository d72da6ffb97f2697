"""Torch device names from the config ('auto', 'cpu', 'cuda', 'cuda:1') to torch devices."""

from __future__ import annotations

import torch


def resolve_device(name: str, setting: str = "device") -> torch.device:
    """'auto' -> cuda when available, else cpu; anything else must be a usable torch device.

    Args:
        name: the configured value.
        setting: the config key it came from, named in the error (e.g. 'train.device').

    Raises:
        ValueError: `name` is not a torch device, or names CUDA on a machine without it.
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ValueError(f"{setting} '{name}' is not a torch device") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"{setting} '{name}' but CUDA is not available here")
    return device
