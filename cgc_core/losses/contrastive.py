"""Contrastive clustering loss of CGC (Silva et al., Eq. 3) on a rendered feature map."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

MIN_TEMPERATURE = 1e-4


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
    *,
    min_pixels: int,
    temperature_eps: float,
    temperature_scale: float,
    temperature_range: tuple[float, float],
    cluster_balance: float,
    max_pixels_per_segment: int | None = None,
    generator: torch.Generator | None = None,
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
      tight cluster's logits explode. scale 1 and range (MIN_TEMPERATURE, inf) give the bare
      formula.
    - Segment ids <= 0 are unlabelled and ignored (0 is cgc's "unlabelled"; negative ids, which
      some tools use for "ignore", are ignored too). A segment takes part only with MORE than
      `min_pixels` pixels (paper: "clusters composed by more than 100 features").
    - Fewer than 2 clusters: the loss is an exact 0 (with one cluster every pixel's softmax has a
      single entry, so Eq. 3 is identically 0; with none the sum is empty). The zero is
      connected to `features` so that `backward()` still works and gives zero gradients.

    Deviation knob `cluster_balance` (alpha): each pixel's term is weighted by a weight w_p of its
    cluster, w_p proportional to N_p^-alpha and scaled so that the weights sum to the number of
    pixels Q (so the loss keeps the paper's scale). alpha = 0 is the paper's plain sum over
    pixels, where a table or floor segment of thousands of pixels outweighs a small object of a
    few dozen; alpha = 1 gives every cluster the same total weight.

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
        temperature_scale: the temperature is clip(scale * phi, *range)
            (`LossConfig.temperature_scale`).
        temperature_range: (min, max) of that clip (`LossConfig.temperature_min`, `_max`).
        cluster_balance: alpha in [0, 1] of the cluster weights below (`LossConfig.cluster_balance`;
            the paper: 0).
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
        phi = phi.clamp(min=max(temperature_range[0], MIN_TEMPERATURE),
                        max=temperature_range[1])  # [N_k]

    weights = None
    if cluster_balance != 0.0:
        balance = n_p.pow(-cluster_balance)
        weights = balance * (n_p.sum() / (balance * n_p).sum())  # [N_k], sum_q w = Q
    if max_pixels_per_segment is not None:
        sample, subsample_weights = _subsample_per_cluster(
            pixel_cluster, counts[keep_cluster], max_pixels_per_segment, generator)
        if sample is not None:
            f, pixel_cluster = f[sample], pixel_cluster[sample]
            weights = subsample_weights if weights is None else weights * subsample_weights

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
    *,
    min_pixels: int,
    temperature_eps: float,
    temperature_scale: float,
    temperature_range: tuple[float, float],
    cluster_balance: float,
    max_pixels_per_segment: int | None = None,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Eq. 3: `contrastive_clustering(...).loss` (see there for every choice).

    Args:
        features: [H, W, D] raw rendered features.
        segments: [H, W] integer segment ids, <= 0 = unlabelled.
    Returns:
        [] scalar.
    """
    return contrastive_clustering(
        features, segments, min_pixels=min_pixels, temperature_eps=temperature_eps,
        temperature_scale=temperature_scale, temperature_range=temperature_range,
        cluster_balance=cluster_balance, max_pixels_per_segment=max_pixels_per_segment,
        generator=generator).loss
