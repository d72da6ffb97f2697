"""Loss terms of Contrastive Gaussian Clustering (Silva et al., Eq. 3-5).

    L = L_rendering + lambda_clustering * L_CC + L_regularization          (Eq. 5)

- `rendering_loss`: the 3DGS photometric loss, (1 - l) * L1 + l * (1 - SSIM).
- `depth_loss`: L1 of rendered vs measured depth, for views with depth (not in the paper).
- `contrastive_clustering_loss`: Eq. 3 on the L2-normalised rendered feature map, one cluster per
  2D segment, per-cluster temperature.
- `spatial_similarity_loss`: Eq. 4 on the 3D Gaussians: features of the K nearest Gaussians pulled
  together, those of the L farthest pushed apart. Neighbours come from a KD-tree (near) and from
  convex-hull "onion peeling" (far), never from an N x N distance matrix.

Every constant (lambdas, K, L, epsilon, ...) is an explicit argument; the values live in
`cgc_core.config.LossConfig` and the trainer passes them.
"""

from cgc_core.losses.contrastive import (
    ContrastiveClusteringResult,
    contrastive_clustering,
    contrastive_clustering_loss,
)
from cgc_core.losses.neighbors import farthest_neighbors, hull_layer_candidates, nearest_neighbors
from cgc_core.losses.photometric import depth_loss, l1_loss, rendering_loss, ssim
from cgc_core.losses.spatial import spatial_similarity_loss

__all__ = [
    "l1_loss",
    "ssim",
    "rendering_loss",
    "depth_loss",
    "ContrastiveClusteringResult",
    "contrastive_clustering",
    "contrastive_clustering_loss",
    "spatial_similarity_loss",
    "nearest_neighbors",
    "hull_layer_candidates",
    "farthest_neighbors",
]
