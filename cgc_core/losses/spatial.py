"""Spatial-similarity regularization of CGC (Silva et al., Eq. 4) on the 3D Gaussians."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from cgc_core.losses.neighbors import farthest_neighbors, nearest_neighbors


def spatial_similarity_loss(
    means: Tensor,
    features: Tensor,
    *,
    num_samples: int,
    near_k: int,
    far_l: int,
    near_weight: float,
    far_weight: float,
    use_similarity: bool,
    use_dissimilarity: bool,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Spatial-similarity regularization, Eq. 4:

        lambda_near / (M K) sum_j sum_{i in K nearest of j} H(1 - f_j . f_i)
      + lambda_far  / (M L) sum_j sum_{i in L farthest of j} H(f_j . f_i)

    with H the sigmoid and f the L2-normalised features (so f_j . f_i is the cosine similarity).
    The M Gaussians j are sampled uniformly without replacement (all of them when M >= N).
    Neighbours are other Gaussians (never j itself), by Euclidean distance between means: the K
    nearest from a KD-tree, the L farthest exactly from the convex-hull layers
    (`hull_layer_candidates`). The neighbour search runs on detached means, so gradients reach
    the features only; the means get none from this term.
    When N - 1 < K (or L) only N - 1 neighbours exist and the mean is over those.

    Args:
        means: [N, 3] Gaussian centres.
        features: [N, D] raw segmentation features.
        num_samples: M (`LossConfig.regularization_samples`).
        near_k: K (paper: 2).
        far_l: L (paper: 5).
        near_weight: lambda_near (paper: 0.05).
        far_weight: lambda_far (paper: 0.15).
        use_similarity: keep the near half (ablation switch).
        use_dissimilarity: keep the far half (ablation switch).
        generator: random source for the sample (any device).
    Returns:
        [] scalar.
    """
    n = means.shape[0]
    if means.dim() != 2 or means.shape[1] != 3 or features.shape[0] != n:
        raise ValueError(f"need means [N, 3] and features [N, D], got {tuple(means.shape)} and "
                         f"{tuple(features.shape)}")
    loss = features.sum() * 0.0
    if n < 2 or num_samples < 1:
        return loss
    points = means.detach().to("cpu", torch.float64).numpy()
    if num_samples >= n:
        sample = np.arange(n, dtype=np.int64)
    else:
        draw_on = generator.device if generator is not None else "cpu"
        sample = torch.randperm(n, generator=generator, device=draw_on)[:num_samples]
        sample = sample.cpu().numpy().astype(np.int64)
    m = len(sample)
    f = F.normalize(features, dim=-1)
    f_j = _rows(f, torch.from_numpy(sample).to(features.device))  # [M, D]

    k = min(near_k, n - 1)
    if use_similarity and k > 0:
        near = torch.from_numpy(nearest_neighbors(points, sample, k)).to(features.device)
        cos = (f_j[:, None, :] * _rows(f, near)).sum(-1)  # [M, K]
        loss = loss + near_weight / (m * k) * torch.sigmoid(1.0 - cos).sum()
    num_far = min(far_l, n - 1)
    if use_dissimilarity and num_far > 0:
        far = torch.from_numpy(farthest_neighbors(points, sample, num_far)).to(features.device)
        cos = (f_j[:, None, :] * _rows(f, far)).sum(-1)  # [M, L]
        loss = loss + far_weight / (m * num_far) * torch.sigmoid(cos).sum()
    return loss


def _rows(values: Tensor, index: Tensor) -> Tensor:
    """values[index] for an integer index of any shape, with a deterministic backward.

    Advanced indexing back-propagates through index_put_(accumulate=True), whose CPU kernel adds
    repeated indices (a Gaussian that is the neighbour of several samples) in an order that
    changes from run to run; index_select back-propagates through index_add_, which does not.

    Args:
        values: [N, D]; index: [...] int64 into N.
    Returns:
        [..., D].
    """
    return values.index_select(0, index.reshape(-1)).reshape(*index.shape, values.shape[-1])
