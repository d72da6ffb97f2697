"""Loss terms of Contrastive Gaussian Clustering (Silva et al., Eq. 3-5).

    L = L_rendering + lambda_clustering * L_CC + L_regularization          (Eq. 5)

- `rendering_loss`: the 3DGS photometric loss, (1 - l) * L1 + l * (1 - SSIM).
- `contrastive_clustering_loss`: Eq. 3 on the L2-normalised rendered feature map, one cluster per
  2D segment, per-cluster temperature.
- `spatial_similarity_loss`: Eq. 4 on the 3D Gaussians: features of the K nearest Gaussians pulled
  together, those of the L farthest pushed apart. Neighbours come from a KD-tree (near) and from
  convex-hull "onion peeling" (far), never from an N x N distance matrix.

Every constant (lambdas, K, L, epsilon, ...) is an explicit argument; the values live in
`cgc_core.config.LossConfig` and the trainer passes them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from scipy.spatial import ConvexHull, QhullError, cKDTree
from torch import Tensor

__all__ = [
    "l1_loss",
    "ssim",
    "rendering_loss",
    "ContrastiveClusteringResult",
    "contrastive_clustering",
    "contrastive_clustering_loss",
    "spatial_similarity_loss",
    "nearest_neighbors",
    "hull_layer_candidates",
    "farthest_neighbors",
]

# ------------------------------------------------------------------------------------ rendering


def l1_loss(rendered: Tensor, target: Tensor) -> Tensor:
    """Mean absolute error.

    Args:
        rendered: [...] any shape.
        target: same shape as `rendered`.
    Returns:
        [] scalar.
    """
    return (rendered - target).abs().mean()


def _gaussian_kernel_1d(size: int, sigma: float, like: Tensor) -> Tensor:
    """[size] normalised 1D Gaussian."""
    x = torch.arange(size, dtype=like.dtype, device=like.device) - (size // 2)
    g = torch.exp(-(x * x) / (2.0 * sigma * sigma))
    return g / g.sum()


def ssim(img1: Tensor, img2: Tensor) -> Tensor:
    """Structural similarity, computed exactly as the 3DGS training code does.

    11 x 11 Gaussian window with sigma 1.5, C1 = 0.01^2, C2 = 0.03^2 (images in [0, 1]), a 'same'
    convolution with zero padding (so the statistics near the image border see zeros, as in 3DGS),
    and the mean of the SSIM map over pixels and channels.

    Args:
        img1: [H, W, C] image.
        img2: [H, W, C] image.
    Returns:
        [] scalar; 1 when the images are equal.
    """
    if img1.shape != img2.shape or img1.dim() != 3:
        raise ValueError(f"ssim wants two [H, W, C] images, got {tuple(img1.shape)} and "
                         f"{tuple(img2.shape)}")
    size, sigma = 11, 1.5
    c1, c2 = 0.01**2, 0.03**2
    channels = img1.shape[-1]
    a = img1.permute(2, 0, 1)[None]  # [1, C, H, W]
    b = img2.permute(2, 0, 1)[None]
    g = _gaussian_kernel_1d(size, sigma, a)
    rows = g.view(1, 1, size, 1).expand(channels, 1, size, 1).contiguous()
    cols = g.view(1, 1, 1, size).expand(channels, 1, 1, size).contiguous()

    def blur(x: Tensor) -> Tensor:
        # The 2D Gaussian window is separable and zero padding commutes with it, so two 1D passes
        # give the same result as 3DGS's 11 x 11 convolution at 2 x 11 instead of 121 MACs a pixel.
        x = F.conv2d(x, rows, padding=(size // 2, 0), groups=channels)
        return F.conv2d(x, cols, padding=(0, size // 2), groups=channels)

    mu1, mu2 = blur(a), blur(b)
    mu1_sq, mu2_sq, mu12 = mu1 * mu1, mu2 * mu2, mu1 * mu2
    sigma1_sq = blur(a * a) - mu1_sq
    sigma2_sq = blur(b * b) - mu2_sq
    sigma12 = blur(a * b) - mu12
    ssim_map = ((2.0 * mu12 + c1) * (2.0 * sigma12 + c2)) / (
        (mu1_sq + mu2_sq + c1) * (sigma1_sq + sigma2_sq + c2))
    return ssim_map.mean()


def rendering_loss(rendered: Tensor, target: Tensor, ssim_lambda: float) -> Tensor:
    """The 3DGS photometric loss: (1 - ssim_lambda) * L1 + ssim_lambda * (1 - SSIM).

    Args:
        rendered: [H, W, 3] rendered colour.
        target: [H, W, 3] ground-truth colour.
        ssim_lambda: weight of the D-SSIM term (`LossConfig.ssim_lambda`, 3DGS: 0.2).
    Returns:
        [] scalar.
    """
    return (1.0 - ssim_lambda) * l1_loss(rendered, target) + ssim_lambda * (
        1.0 - ssim(rendered, target))


# ------------------------------------------------------------------- contrastive clustering

# Default floor of the per-cluster temperature. A cluster whose normalised features all coincide
# has phi = 0 by the paper's formula, which would make its logits infinite.
_MIN_TEMPERATURE = 1e-4


@dataclass
class ContrastiveClusteringResult:
    """What `contrastive_clustering` computed (for the loss and for logging)."""

    loss: Tensor
    """[] Eq. 3 (a sum over pixels, a mean over clusters)."""
    num_clusters: int
    """N_k: segments that took part (labelled and larger than `min_pixels`)."""
    num_pixels: int
    """Pixels whose log-probability entered the sum (after subsampling, if any)."""
    segment_ids: Tensor
    """[N_k] the segment id of each cluster."""
    temperatures: Tensor
    """[N_k] phi^p of each cluster (detached)."""


def contrastive_clustering(
    features: Tensor,
    segments: Tensor,
    min_pixels: int,
    temperature_eps: float,
    max_pixels_per_segment: int | None = None,
    generator: torch.Generator | None = None,
    temperature_range: tuple[float, float] = (_MIN_TEMPERATURE, float("inf")),
    temperature_scale: float = 1.0,
) -> ContrastiveClusteringResult:
    """Contrastive clustering loss of Eq. 3 with the per-cluster temperature, plus statistics.

        L_CC = -1/N_k sum_p sum_{q in p} log(exp(f_q.c_p / phi_p) / sum_s exp(f_q.c_s / phi_s))
        phi_p = sum_{q in p} ||f_q - c_p||_2 / (N_p log(N_p + eps))

    Choices (the paper leaves them open; each is what its text says or what its released code
    does):
    - Every pixel feature is L2-normalised first (paper: "we apply l2-normalization to each
      feature in the rendered feature map"), so the loss ignores feature magnitudes.
    - The centroid c_p is the plain mean of the normalised features and is NOT re-normalised (the
      paper defines it as "the mean feature"); its norm is below 1 for a spread-out cluster, which
      lowers that cluster's logits. Gradients flow through the centroids.
    - The temperature phi_p is detached (a constant per step, like the concentration estimate of
      prototypical contrastive learning that this temperature comes from, and as the authors'
      released code does). It is floored at 1e-4 for the degenerate case of a cluster whose
      features all coincide. `temperature_scale` and `temperature_range` turn it into the
      temperature the authors' released code divides by: clip(10 * phi, 0.1, 1). `LossConfig`
      adopts that: with the bare formula (phi ~ 0.08 on our scenes) the softmax saturates while
      clusters are still spread out (pixels of one object at cosine ~0.55 to each other), so the
      paper's mask threshold t = 0.7 cuts objects into pieces; the bare formula also lets a
      tight cluster's logits explode. The defaults here are the bare formula.
    - Segment ids <= 0 are unlabelled and ignored (0 is cgc's "unlabelled"; negative ids, which
      some tools use for "ignore", are ignored too). A segment takes part only with MORE than
      `min_pixels` pixels (paper: "clusters composed by more than 100 features").
    - Fewer than 2 clusters: the loss is an exact 0 (with one cluster every pixel's softmax has a
      single entry, so Eq. 3 is identically 0; with none the sum is empty). The zero is
      connected to `features` so that `backward()` still works and gives zero gradients.

    Deviation knob: `max_pixels_per_segment` keeps at most that many random pixels of each
    segment in the sum over q (centroids and temperatures still use every pixel, they are cheap);
    the kept pixels' terms are scaled by N_p / kept so the result is an unbiased estimate of the
    full sum. None (the paper) keeps every pixel.

    Args:
        features: [H, W, D] raw rendered features (not normalised).
        segments: [H, W] integer segment ids (ids mean nothing across views).
        min_pixels: segments with this many pixels or fewer are ignored
            (`LossConfig.min_cluster_pixels`, paper: 100).
        temperature_eps: epsilon of the temperature (`LossConfig.temperature_eps`, paper: 100).
        max_pixels_per_segment: see above; None = all pixels.
        generator: random source for the subsampling (any device).
    Returns:
        ContrastiveClusteringResult; `.loss` is a [] tensor.
    """
    if features.dim() != 3 or segments.shape != features.shape[:2]:
        raise ValueError(f"need features [H, W, D] and segments [H, W], got "
                         f"{tuple(features.shape)} and {tuple(segments.shape)}")
    feats = F.normalize(features.reshape(-1, features.shape[-1]), dim=-1)  # [P, D]
    labels = segments.reshape(-1).to(features.device)

    labelled = labels > 0
    ids, inverse, counts = torch.unique(labels[labelled], return_inverse=True, return_counts=True)
    keep_cluster = counts > min_pixels
    num_clusters = int(keep_cluster.sum())
    if num_clusters < 2:
        zero = features.sum() * 0.0
        return ContrastiveClusteringResult(
            loss=zero, num_clusters=num_clusters, num_pixels=0,
            segment_ids=ids[keep_cluster],
            temperatures=features.new_zeros(num_clusters))

    # Cluster index of every labelled pixel: 0..N_k-1, or -1 for pixels of small segments.
    new_index = torch.cumsum(keep_cluster.long(), 0) - 1
    new_index[~keep_cluster] = -1
    pixel_cluster = new_index[inverse]
    in_cluster = pixel_cluster >= 0
    pixel_cluster = pixel_cluster[in_cluster]  # [Q]
    f = feats[labelled][in_cluster]  # [Q, D]
    n_p = counts[keep_cluster].to(f.dtype)  # [N_k]

    centroids = torch.zeros(num_clusters, f.shape[1], dtype=f.dtype, device=f.device)
    centroids = centroids.index_add(0, pixel_cluster, f) / n_p[:, None]  # [N_k, D]

    with torch.no_grad():
        spread = torch.zeros_like(n_p).index_add(
            0, pixel_cluster, (f - centroids[pixel_cluster]).norm(dim=-1))
        phi = temperature_scale * spread / (n_p * torch.log(n_p + temperature_eps))
        phi = phi.clamp(min=max(temperature_range[0], _MIN_TEMPERATURE),
                        max=temperature_range[1])  # [N_k]

    weights = None
    if max_pixels_per_segment is not None:
        sample, weights = _subsample_per_cluster(
            pixel_cluster, counts[keep_cluster], max_pixels_per_segment, generator)
        if sample is not None:
            f, pixel_cluster = f[sample], pixel_cluster[sample]

    # [Q, N_k] logits: column s is divided by its own cluster's temperature phi_s.
    logits = (f @ centroids.T) / phi[None, :]
    log_prob = torch.log_softmax(logits, dim=-1)
    own = log_prob.gather(1, pixel_cluster[:, None])[:, 0]  # [Q]
    if weights is not None:
        own = own * weights[pixel_cluster]
    loss = -own.sum() / num_clusters
    return ContrastiveClusteringResult(
        loss=loss, num_clusters=num_clusters, num_pixels=int(f.shape[0]),
        segment_ids=ids[keep_cluster], temperatures=phi)


def _subsample_per_cluster(
    pixel_cluster: Tensor, counts: Tensor, limit: int, generator: torch.Generator | None,
) -> tuple[Tensor | None, Tensor | None]:
    """Pick at most `limit` random pixels per cluster, vectorised.

    Returns (indices into the pixels [Q'], per-cluster weight N_p / kept [N_k]) or (None, None)
    when no cluster is over the limit.
    """
    if limit < 1:
        raise ValueError(f"max_pixels_per_segment must be >= 1, got {limit}")
    if int(counts.max()) <= limit:
        return None, None
    # Sorting by (cluster, random key) lists each cluster's pixels in random order; a pixel's
    # rank inside its cluster is its position minus the cluster's start.
    # Drawn on the generator's device (a CPU generator is fine for CUDA features).
    draw_on = generator.device if generator is not None else pixel_cluster.device
    keys = torch.rand(pixel_cluster.shape[0], generator=generator, device=draw_on,
                      dtype=torch.float64).to(pixel_cluster.device)
    order = torch.argsort(pixel_cluster.to(torch.float64) + keys)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(order.shape[0], device=order.device) - starts[pixel_cluster[order]]
    sample = order[rank < limit]
    kept = counts.clamp_max(limit)
    return sample, counts.to(torch.float32) / kept.to(torch.float32)


def contrastive_clustering_loss(
    features: Tensor,
    segments: Tensor,
    min_pixels: int,
    temperature_eps: float,
    max_pixels_per_segment: int | None = None,
    generator: torch.Generator | None = None,
    temperature_range: tuple[float, float] = (_MIN_TEMPERATURE, float("inf")),
    temperature_scale: float = 1.0,
) -> Tensor:
    """Eq. 3: `contrastive_clustering(...).loss` (see there for every choice).

    Args:
        features: [H, W, D] raw rendered features.
        segments: [H, W] integer segment ids, <= 0 = unlabelled.
    Returns:
        [] scalar.
    """
    return contrastive_clustering(features, segments, min_pixels, temperature_eps,
                                  max_pixels_per_segment, generator, temperature_range,
                                  temperature_scale).loss


# --------------------------------------------------------------- spatial-similarity (Eq. 4)

# Below this many points the farthest search is a brute-force distance matrix (M x N is small),
# which also sidesteps Qhull on tiny or degenerate sets.
_BRUTE_FORCE_MAX_POINTS = 64
# Largest query x candidate distance block held at once (float64 entries: 128 MiB).
_MAX_DISTANCE_BLOCK = 1 << 24


def nearest_neighbors(points: np.ndarray, query_index: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k nearest other points of each query point (KD-tree).

    Args:
        points: [N, 3] float array.
        query_index: [M] indices into `points`.
        k: neighbours per query; must be <= N - 1.
    Returns:
        [M, k] int64 indices, nearest first, never the query itself.
    """
    tree = cKDTree(points)
    _, idx = tree.query(points[query_index], k=k + 1, workers=-1)
    idx = np.asarray(idx, dtype=np.int64).reshape(len(query_index), k + 1)
    # Normally the query is its own nearest neighbour; with duplicated positions another point
    # at distance 0 may come first, so drop the query wherever it is, else the last column.
    not_self = idx != query_index[:, None]
    no_self = not_self.all(axis=1)
    not_self[no_self, -1] = False
    return idx[not_self].reshape(len(query_index), k)


def _layer_vertices(points: np.ndarray, remaining: np.ndarray,
                    num_layers: int) -> tuple[np.ndarray, bool]:
    """One onion layer: a subset H of `remaining` whose convex hull contains all of `remaining`.

    Returns (indices into `points` of H, exhausted) where `exhausted` says that peeling must stop
    (H is everything that is left, or the rest coincides with H).
    The set may be degenerate (coplanar, collinear, coincident): the hull is then taken in the
    affine hull of the set, found from the singular values of the centred coordinates.
    """
    pts = points[remaining]
    if len(pts) <= 4:
        return remaining, True
    try:
        # The common case, a set spanning 3D: Qhull directly (no rank test to pay for).
        return remaining[ConvexHull(pts).vertices], False
    except (QhullError, ValueError):
        pass  # flat (or nearly): find its affine hull and take the hull there
    centred = pts - pts.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    rank = int(np.sum(s > 1e-9 * s[0])) if s[0] > 0 else 0
    if rank == 0:
        # All coincide, so all are equally far from any query: num_layers + 1 of them are as
        # good as all of them (k farthest, plus one in case the query is among them). Stop.
        return remaining[:num_layers + 1], True
    coords = centred @ vt[:rank].T  # [n, rank]: coordinates in the affine hull
    if rank == 1:
        t = coords[:, 0]
        return remaining[[int(np.argmin(t)), int(np.argmax(t))]], False
    try:
        return remaining[ConvexHull(coords).vertices], False
    except (QhullError, ValueError):
        return remaining, True  # cannot peel: every remaining point is a candidate (exact)


def hull_layer_candidates(points: np.ndarray, num_layers: int) -> np.ndarray:
    """Union of the first `num_layers` convex-hull layers ("onion peeling") of a point set.

    Why this finds the farthest points exactly. Fix a query x. The distance p -> ||p - x|| is
    convex, so its maximum over a convex polytope conv(S) is attained at a vertex: the farthest
    point of S from x is a vertex of its convex hull. Peel: S_1 = S, H_i = vertices of
    conv(S_i), S_{i+1} = S_i minus H_i. Take any p in S that is not in H_1..H_k. For each i <= k,
    p lies in S_i, inside conv(S_i) = conv(H_i), so some h_i in H_i is at least as far from x as
    p. The h_i are distinct (the layers are disjoint), so k points of the first k layers are at
    least as far as p: the k farthest points of S from ANY query can be chosen inside the first k
    layers. Only conv(H_i) containing S_i is used, so H_i may be any such subset (that is how the
    degenerate cases are handled, and why falling back to "all of S_i" is always correct).

    Excluding the query itself (it is at distance 0, so never needed unless all distances tie at
    0) costs nothing: a point p farther than 0 is beaten by k layer points all farther than 0,
    none of which is the query; and the union holds at least k + 1 points whenever N > k (a layer
    has >= 2 points unless the set is exhausted).

    Exact up to rounding: a set (or what is left of it) that Qhull finds flat is peeled in its
    affine hull (plane or line); thickness below 1e-9 of its extent counts as flat.

    Args:
        points: [N, 3] float array.
        num_layers: how many layers to peel (k).
    Returns:
        [C] int64 indices of the candidate points.
    """
    points = np.asarray(points, dtype=np.float64)
    remaining = np.arange(len(points), dtype=np.int64)
    layers = []
    for _ in range(num_layers):
        if len(remaining) == 0:
            break
        layer, exhausted = _layer_vertices(points, remaining, num_layers)
        layers.append(layer)
        if exhausted:
            break
        mask = np.ones(len(points), dtype=bool)
        mask[layer] = False
        remaining = remaining[mask[remaining]]
    if not layers:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.concatenate(layers))


def farthest_neighbors(points: np.ndarray, query_index: np.ndarray, k: int,
                       brute_force_max_points: int = _BRUTE_FORCE_MAX_POINTS) -> np.ndarray:
    """Indices of the k farthest other points of each query point, exact.

    Searches only the first k convex-hull layers (`hull_layer_candidates`, the proof is there)
    unless the set has at most `brute_force_max_points` points.

    Args:
        points: [N, 3] float array.
        query_index: [M] indices into `points`.
        k: neighbours per query; must be <= N - 1.
    Returns:
        [M, k] int64 indices, farthest first, never the query itself.
    """
    points = np.asarray(points, dtype=np.float64)
    if len(points) <= brute_force_max_points:
        candidates = np.arange(len(points), dtype=np.int64)
    else:
        candidates = hull_layer_candidates(points, k)
    cand = torch.from_numpy(points[candidates])
    # C is usually a small fraction of N (a few hull layers), but for points that all lie on a
    # convex surface (a sphere) every point is a hull vertex: bound the [rows, C] block in memory.
    rows = max(1, _MAX_DISTANCE_BLOCK // max(1, len(candidates)))
    out = np.empty((len(query_index), k), dtype=np.int64)
    for start in range(0, len(query_index), rows):
        q = query_index[start:start + rows]
        d = torch.cdist(torch.from_numpy(points[q]), cand)  # [rows, C]
        d[torch.from_numpy(candidates[None, :] == q[:, None])] = -1.0  # never the query itself
        _, top = torch.topk(d, k, dim=1, largest=True, sorted=True)
        out[start:start + rows] = candidates[top.numpy()]
    return out


def spatial_similarity_loss(
    means: Tensor,
    features: Tensor,
    num_samples: int,
    near_k: int,
    far_l: int,
    near_weight: float,
    far_weight: float,
    use_similarity: bool = True,
    use_dissimilarity: bool = True,
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
    f_j = f[torch.from_numpy(sample).to(features.device)]  # [M, D]

    k = min(near_k, n - 1)
    if use_similarity and k > 0:
        near = torch.from_numpy(nearest_neighbors(points, sample, k)).to(features.device)
        cos = (f_j[:, None, :] * f[near]).sum(-1)  # [M, K]
        loss = loss + near_weight / (m * k) * torch.sigmoid(1.0 - cos).sum()
    l = min(far_l, n - 1)
    if use_dissimilarity and l > 0:
        far = torch.from_numpy(farthest_neighbors(points, sample, l)).to(features.device)
        cos = (f_j[:, None, :] * f[far]).sum(-1)  # [M, L]
        loss = loss + far_weight / (m * l) * torch.sigmoid(cos).sum()
    return loss
