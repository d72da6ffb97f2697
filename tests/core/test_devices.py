import pytest
import torch

from cgc_core.devices import resolve_device


def test_device_resolution():
    assert resolve_device("cpu") == torch.device("cpu")
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    with pytest.raises(ValueError, match="train.device 'gpu0' is not a torch device"):
        resolve_device("gpu0", "train.device")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            resolve_device("cuda")
