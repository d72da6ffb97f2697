// Tiled Gaussian-splatting rasterizer for the CPU: binning, forward and hand-written backward.
//
// The semantics are exactly those of cgc_core/render/reference.py (the oracle); see its module
// docstring. Projection (means2d, conics, depths, radii, tile rects) happens in torch before this
// is called, so this file only sees screen-space Gaussians.
//
// Layout: every pass walks tiles (16 x 16 pixels) in parallel with OpenMP (as many threads as
// torch.get_num_threads()), dynamic schedule because tile costs vary by orders of magnitude
// (empty sky vs a dense object). A tile first copies its Gaussians into contiguous thread-local
// arrays (structure of arrays), then takes them in depth order and splats each onto the pixels
// of the rows and column spans where it can pass the alpha >= 1/255 test (row_span): every pixel
// still sees its Gaussians front to back, but the work is proportional to the (pixel, Gaussian)
// pairs inside the ellipses rather than to pixels x list length. Pixel state (T, accumulators)
// lives in per-thread buffers reused across tiles: nothing is allocated per pixel.
//
// Gradients are accumulated per *intersection* (one row per (tile, Gaussian) pair): a tile is
// handled by exactly one thread, so its rows are written race-free with no atomics, and the
// per-Gaussian sum is a second parallel pass where each thread owns a range of Gaussians
// (sum_intersections). Unlike per-thread [N, D] buffers this needs memory proportional to the
// work, not to N x threads, and the summation order does not depend on the schedule, so the
// gradients are deterministic run to run.

#include <torch/extension.h>

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int kTile = 16;  // must equal project.TILE_SIZE

// Constants of project.py, in the arithmetic type, so float32 compares like torch's float32.
template <typename T> constexpr T kAlphaMin = T(1.0 / 255.0);
template <typename T> constexpr T kAlphaMax = T(0.99);
template <typename T> constexpr T kTMin = T(1e-4);
// Slack on the cheap exp-free rejection test below: the exact test still decides near the edge.
template <typename T> constexpr T kSkipSlack = T(1e-3);

// floor / ceil to an integer without a libm call (no SSE4.1 rounding instructions in the
// baseline x86-64 target); arguments are clamped first so the cast cannot overflow.
inline int64_t floor_int(double x) {
  x = std::min(std::max(x, -1e9), 1e9);
  const int64_t t = int64_t(x);
  return t - (double(t) > x);
}
inline int64_t ceil_int(double x) { return -floor_int(-x); }

// One tile's Gaussians in front-to-back order, as contiguous arrays.
template <typename T>
struct TileGaussians {
  std::vector<T> mx, my, ca, cb, cc, op, skip_sigma, col;
  std::vector<int32_t> row_lo, row_hi;  // pixel rows of the tile the Gaussian can reach
  // Per-Gaussian coefficients of row_span, in double: span_p = 2 s / a, span_q = det / a^2,
  // span_r = b / a; span_p < 0 marks "never visible", span_q < 0 "no closed form".
  std::vector<double> span_p, span_q, span_r;
  int64_t count = 0;

  void load(const int32_t* ids, int64_t n, const T* means2d, const T* conics, const T* opac,
            const T* colors, int64_t channels, int64_t v0, int64_t v1) {
    count = n;
    for (auto* v : {&mx, &my, &ca, &cb, &cc, &op, &skip_sigma}) v->resize(n);
    row_lo.resize(n);
    row_hi.resize(n);
    span_p.resize(n);
    span_q.resize(n);
    span_r.resize(n);
    col.resize(n * channels);
    for (int64_t j = 0; j < n; ++j) {
      const int64_t g = ids[j];
      mx[j] = means2d[2 * g];
      my[j] = means2d[2 * g + 1];
      ca[j] = conics[3 * g];
      cb[j] = conics[3 * g + 1];
      cc[j] = conics[3 * g + 2];
      op[j] = opac[g];
      // opacity exp(-sigma) < 1/255  <=>  sigma > log(255 opacity): beyond this (plus slack) a
      // pair is skipped without calling exp, which is most pairs of a tile.
      skip_sigma[j] = op[j] > T(0) ? std::log(T(255) * op[j]) + kSkipSlack<T> : T(-1);
      set_rows(j, v0, v1);
      set_span_coefficients(j);
      std::copy(colors + g * channels, colors + (g + 1) * channels, col.begin() + j * channels);
    }
  }

  // Rows of [v0, v1) whose centre lies within the vertical extent of {d : sigma(d) <=
  // skip_sigma}: for sigma = 0.5 d^T Q d that extent is sqrt(2 s (Q^-1)_yy), (Q^-1)_yy = a / det Q.
  // Widened slightly (see row_span); empty (lo > hi) for a Gaussian that is never visible.
  void set_rows(int64_t j, int64_t v0, int64_t v1) {
    const double s = skip_sigma[j], a = ca[j], b = cb[j], c = cc[j];
    const double det = a * c - b * b;
    int64_t lo = v0, hi = v1 - 1;
    if (!(s >= 0)) {
      lo = 1;
      hi = 0;
    } else if (det > 0 && a > 0 && c > 0) {
      const double half = std::sqrt(2.0 * s * a / det) * 1.001 + 1e-3;
      lo = std::max(lo, ceil_int(double(my[j]) - half - 0.5));
      hi = std::min(hi, floor_int(double(my[j]) + half - 0.5));
    }
    row_lo[j] = int32_t(std::max<int64_t>(lo, -1));
    row_hi[j] = int32_t(std::max<int64_t>(hi, -2));
  }

  // Pixel columns [lo, hi] of the row with centre py (clipped to the tile's [u0, u1)) that can
  // hold a pair with sigma <= skip_sigma: for fixed dy, sigma(dx) = 0.5 a dx^2 + b dy dx +
  // 0.5 c dy^2 is a parabola, so that set is one interval, found in closed form. Pixels outside
  // it would be skipped by pair_alpha anyway, so sweeping only the interval changes no result;
  // it is what makes big tiles cheap (work scales with the pairs inside the ellipses, not with
  // pixels x list length). Done in double and widened slightly so that float rounding of sigma
  // can never put a kept pair outside it.
  // Solving sigma(dx) <= s for dx: the roots are centre +- sqrt(2 s / a - det dy^2 / a^2),
  // centre = -b dy / a; the coefficients are precomputed per Gaussian so that a row costs one
  // sqrt and no division.
  void set_span_coefficients(int64_t j) {
    const double s = skip_sigma[j], a = ca[j], b = cb[j], c = cc[j];
    if (!(s >= 0)) {
      span_p[j] = -1.0;
    } else if (!(a > 0)) {
      span_p[j] = 0.0;
      span_q[j] = -1.0;
    } else {
      span_p[j] = 2.0 * s / a;
      span_q[j] = (a * c - b * b) / (a * a);
      span_r[j] = b / a;
    }
  }

  bool row_span(int64_t j, double py, int64_t u0, int64_t u1, int64_t& lo, int64_t& hi) const {
    if (span_p[j] < 0) return false;  // opacity below 1/255: never visible
    if (span_q[j] < 0) {  // degenerate conic: no closed form, test the whole row
      lo = u0;
      hi = u1 - 1;
      return true;
    }
    const double dy = double(my[j]) - py;
    const double h2 = span_p[j] - span_q[j] * dy * dy;
    if (h2 < 0) return false;
    const double half = std::sqrt(h2) * 1.001 + 1e-3;
    const double centre = double(mx[j]) + span_r[j] * dy;  // pixel centre where sigma is smallest
    // Pixel u has its centre at u + 0.5.
    lo = std::max<int64_t>(u0, ceil_int(centre - half - 0.5));
    hi = std::min<int64_t>(u1 - 1, floor_int(centre + half - 0.5));
    return lo <= hi;
  }
};

// One Gaussian's screen-space parameters as plain scalars: the pixel loops work on a local copy,
// which the compiler keeps in registers (through the arrays it would have to reload them after
// every store to the pixel state, since it cannot prove they do not alias).
template <typename T>
struct Splat {
  T mx, my, a, b, c, op, skip_sigma;
};

template <typename T>
inline Splat<T> splat_of(const TileGaussians<T>& g, int64_t j) {
  return {g.mx[j], g.my[j], g.ca[j], g.cb[j], g.cc[j], g.op[j], g.skip_sigma[j]};
}

// The per-(pixel, Gaussian) rule shared by forward and backward so both make identical skip
// decisions. Returns false when the pair is skipped; otherwise sets vis = exp(-sigma) and the
// clamped alpha. The operation order matches reference.py so float32 rounding agrees.
template <typename T>
inline bool pair_alpha(const Splat<T>& s, T px, T py, T& dx, T& dy, T& vis, T& alpha) {
  dx = s.mx - px;
  dy = s.my - py;
  const T sigma = T(0.5) * (s.a * dx * dx + s.c * dy * dy) + s.b * dx * dy;
  if (sigma < T(0) || sigma > s.skip_sigma) return false;
  vis = std::exp(-sigma);
  alpha = std::min(kAlphaMax<T>, s.op * vis);
  return alpha >= kAlphaMin<T>;
}

inline int num_threads() { return std::max(1, at::get_num_threads()); }

void check_cpu_contiguous(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// ---------------------------------------------------------------------------------------------
// Binning: per-tile lists of Gaussian ids, each in front-to-back order.

// Order-preserving unsigned key of a float / double (IEEE: flip all bits of negatives, set the
// sign bit of positives), so that an integer radix sort sorts by value.
inline uint32_t sort_key(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
inline uint64_t sort_key(double x) {
  uint64_t u;
  std::memcpy(&u, &x, sizeof u);
  return (u & 0x8000000000000000ull) ? ~u : (u | 0x8000000000000000ull);
}

// Indices of the Gaussians with a non-empty tile rect, sorted by depth, ties by index: the rule
// of project.depth_order, restricted to the Gaussians that reach any tile. An LSD radix sort
// (8-bit digits) is stable, so equal depths keep index order; it costs a few passes over the
// visible Gaussians, several times less than torch.sort(stable=True) at N = 100k.
template <typename T>
std::vector<int32_t> visible_depth_order(const T* depths, const int32_t* rects, int64_t n) {
  using Key = decltype(sort_key(T(0)));
  std::vector<int32_t> idx, tmp;
  std::vector<Key> keys, tmp_keys;
  for (int64_t g = 0; g < n; ++g) {
    const int32_t* r = rects + 4 * g;
    if (r[0] < r[2] && r[1] < r[3]) {
      idx.push_back(int32_t(g));
      keys.push_back(sort_key(depths[g]));
    }
  }
  tmp.resize(idx.size());
  tmp_keys.resize(idx.size());
  for (size_t shift = 0; shift < 8 * sizeof(Key) && !keys.empty(); shift += 8) {
    size_t count[257] = {0};
    for (const Key k : keys) ++count[((k >> shift) & 0xff) + 1];
    // All keys share this digit (common for high exponent bits): the pass would move nothing.
    if (count[((keys[0] >> shift) & 0xff) + 1] == keys.size()) continue;
    for (int d = 0; d < 256; ++d) count[d + 1] += count[d];
    for (size_t i = 0; i < keys.size(); ++i) {
      const size_t dst = count[(keys[i] >> shift) & 0xff]++;
      tmp[dst] = idx[i];
      tmp_keys[dst] = keys[i];
    }
    idx.swap(tmp);
    keys.swap(tmp_keys);
  }
  return idx;
}

std::vector<torch::Tensor> bin_gaussians(torch::Tensor depths, torch::Tensor rects,
                                         int64_t tiles_x, int64_t tiles_y) {
  check_cpu_contiguous(depths, "depths");
  check_cpu_contiguous(rects, "rects");
  TORCH_CHECK(rects.scalar_type() == torch::kInt32, "rects must be int32");
  const int64_t n = depths.size(0);
  const int64_t num_tiles = tiles_x * tiles_y;
  const int32_t* rc = rects.data_ptr<int32_t>();
  std::vector<int32_t> order;
  AT_DISPATCH_FLOATING_TYPES(depths.scalar_type(), "visible_depth_order", [&] {
    order = visible_depth_order<scalar_t>(depths.data_ptr<scalar_t>(), rc, n);
  });

  auto offsets = torch::zeros({num_tiles + 1}, torch::kInt64);
  int64_t* off = offsets.data_ptr<int64_t>();
  for (const int32_t g : order) {
    const int32_t* r = rc + 4 * g;
    for (int32_t ty = r[1]; ty < r[3]; ++ty)
      for (int32_t tx = r[0]; tx < r[2]; ++tx) ++off[ty * tiles_x + tx + 1];
  }
  for (int64_t t = 0; t < num_tiles; ++t) off[t + 1] += off[t];

  auto ids = torch::empty({off[num_tiles]}, torch::kInt32);
  int32_t* id = ids.data_ptr<int32_t>();
  std::vector<int64_t> cursor(off, off + num_tiles);
  // Filling in global depth order makes every tile's list sorted with no per-tile sort.
  for (const int32_t g : order) {
    const int32_t* r = rc + 4 * g;
    for (int32_t ty = r[1]; ty < r[3]; ++ty)
      for (int32_t tx = r[0]; tx < r[2]; ++tx) id[cursor[ty * tiles_x + tx]++] = g;
  }
  return {offsets, ids};
}

// ---------------------------------------------------------------------------------------------
// Forward.

template <typename T>
void forward_impl(const T* means2d, const T* conics, const T* colors, const T* opac, const T* bg,
                  const int64_t* offsets, const int32_t* ids, int64_t channels, int64_t width,
                  int64_t height, T* out, T* final_t, int32_t* n_contrib) {
  const int64_t tiles_x = (width + kTile - 1) / kTile;
  const int64_t tiles_y = (height + kTile - 1) / kTile;
  const int64_t num_tiles = tiles_x * tiles_y;
#pragma omp parallel num_threads(num_threads())
  {
    // Per-thread pixel state of one tile, reused across tiles (no per-pixel allocation).
    constexpr int64_t kPix = kTile * kTile;
    TileGaussians<T> g;
    std::vector<T> acc(kPix * channels), trans(kPix);
    std::vector<int32_t> last(kPix);
    std::vector<char> done(kPix);
    int32_t row_active[kTile];
#pragma omp for schedule(dynamic, 1)
    for (int64_t tile = 0; tile < num_tiles; ++tile) {
      const int64_t u0 = (tile % tiles_x) * kTile, v0 = (tile / tiles_x) * kTile;
      const int64_t u1 = std::min(u0 + kTile, width), v1 = std::min(v0 + kTile, height);
      g.load(ids + offsets[tile], offsets[tile + 1] - offsets[tile], means2d, conics, opac,
             colors, channels, v0, v1);
      std::fill(acc.begin(), acc.end(), T(0));
      std::fill(trans.begin(), trans.end(), T(1));
      std::fill(last.begin(), last.end(), 0);
      std::fill(done.begin(), done.end(), 0);
      int64_t active = (u1 - u0) * (v1 - v0);
      // Unfinished pixels per row: a row whose pixels all stopped is skipped whole.
      std::fill(row_active, row_active + kTile, int32_t(u1 - u0));
      // Gaussians in order, each splatted onto the pixels of its rows' spans only: every pixel
      // still sees its Gaussians front to back, exactly as in the per-pixel rule.
      for (int64_t j = 0; j < g.count && active > 0; ++j) {
        const Splat<T> sp = splat_of(g, j);
        const T* __restrict c = g.col.data() + j * channels;
        for (int64_t v = g.row_lo[j]; v <= g.row_hi[j]; ++v) {
          if (row_active[v - v0] == 0) continue;
          const T py = T(v) + T(0.5);
          int64_t lo, hi;
          if (!g.row_span(j, double(py), u0, u1, lo, hi)) continue;
          for (int64_t u = lo; u <= hi; ++u) {
            const int64_t k = (v - v0) * kTile + (u - u0);
            if (done[k]) continue;
            T dx, dy, vis, alpha;
            if (!pair_alpha(sp, T(u) + T(0.5), py, dx, dy, vis, alpha)) continue;
            const T next_t = trans[k] * (T(1) - alpha);
            if (next_t <= kTMin<T>) {  // this pixel is finished; the Gaussian is not added
              done[k] = 1;
              --active;
              --row_active[v - v0];
              continue;
            }
            const T w = alpha * trans[k];
            T* __restrict a = acc.data() + k * channels;
            for (int64_t ch = 0; ch < channels; ++ch) a[ch] += w * c[ch];
            trans[k] = next_t;
            last[k] = int32_t(j + 1);
          }
        }
      }
      for (int64_t v = v0; v < v1; ++v) {
        for (int64_t u = u0; u < u1; ++u) {
          const int64_t k = (v - v0) * kTile + (u - u0), pix = v * width + u;
          for (int64_t ch = 0; ch < channels; ++ch)
            out[pix * channels + ch] = acc[k * channels + ch] + trans[k] * bg[ch];
          final_t[pix] = trans[k];
          n_contrib[pix] = last[k];
        }
      }
    }
  }
}

std::vector<torch::Tensor> rasterize_forward(torch::Tensor means2d, torch::Tensor conics,
                                             torch::Tensor colors, torch::Tensor opacities,
                                             torch::Tensor background, torch::Tensor offsets,
                                             torch::Tensor ids, int64_t width, int64_t height) {
  for (auto& [t, name] : {std::pair{means2d, "means2d"}, {conics, "conics"}, {colors, "colors"},
                          {opacities, "opacities"}, {background, "background"},
                          {offsets, "tile_offsets"}, {ids, "tile_ids"}})
    check_cpu_contiguous(t, name);
  const int64_t channels = colors.size(1);
  auto out = torch::empty({height, width, channels}, colors.options());
  auto final_t = torch::empty({height, width}, colors.options());
  auto n_contrib = torch::empty({height, width}, colors.options().dtype(torch::kInt32));
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "rasterize_forward", [&] {
    forward_impl<scalar_t>(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                           colors.data_ptr<scalar_t>(), opacities.data_ptr<scalar_t>(),
                           background.data_ptr<scalar_t>(), offsets.data_ptr<int64_t>(),
                           ids.data_ptr<int32_t>(), channels, width, height,
                           out.data_ptr<scalar_t>(), final_t.data_ptr<scalar_t>(),
                           n_contrib.data_ptr<int32_t>());
  });
  return {out, final_t, n_contrib};
}

// ---------------------------------------------------------------------------------------------
// Backward: each pixel walks its contributors back to front, recovering the transmittance
// before Gaussian j as T_j = T_{j+1} / (1 - alpha_j) from the saved final T, and keeping
// S = sum of colour * weight of the Gaussians behind j. With C = sum_i c_i alpha_i T_i + T_N bg:
//   dC/dc_j     = alpha_j T_j
//   dC/dalpha_j = c_j T_j - (S + T_N bg) / (1 - alpha_j),   d(1 - T_N)/dalpha_j = T_N / (1 - alpha_j)
// then alpha = opacity exp(-sigma) (no gradient where clamped at ALPHA_MAX) and
// sigma = 0.5 (a dx^2 + c dy^2) + b dx dy with d = mean2d - pixel centre.

// Columns of the per-intersection gradient rows.
constexpr int64_t kGMeanX = 0, kGMeanY = 1, kGConicA = 2, kGConicB = 3, kGConicC = 4,
                  kGOpacity = 5, kGColor = 6;

template <typename T>
void backward_impl(const T* means2d, const T* conics, const T* colors, const T* opac, const T* bg,
                   const int64_t* offsets, const int32_t* ids, const T* final_t,
                   const int32_t* n_contrib, const T* grad_out, const T* grad_alpha,
                   int64_t channels, int64_t width, int64_t height, T* grad_isect) {
  const int64_t tiles_x = (width + kTile - 1) / kTile;
  const int64_t tiles_y = (height + kTile - 1) / kTile;
  const int64_t num_tiles = tiles_x * tiles_y;
  const int64_t row = kGColor + channels;
#pragma omp parallel num_threads(num_threads())
  {
    constexpr int64_t kPix = kTile * kTile;
    TileGaussians<T> g;
    // behind[k] = g . S for pixel k, with g = dL/dC of the pixel and S the colour blended behind
    // the current Gaussian: S only ever enters dL/dalpha through that dot product, so one scalar
    // per pixel replaces a C-vector (half the channel work per pair).
    std::vector<T> behind(kPix), trans(kPix), tail(kPix);
    std::vector<int32_t> last(kPix);
#pragma omp for schedule(dynamic, 1)
    for (int64_t tile = 0; tile < num_tiles; ++tile) {
      const int64_t begin = offsets[tile];
      const int64_t u0 = (tile % tiles_x) * kTile, v0 = (tile / tiles_x) * kTile;
      const int64_t u1 = std::min(u0 + kTile, width), v1 = std::min(v0 + kTile, height);
      g.load(ids + begin, offsets[tile + 1] - begin, means2d, conics, opac, colors, channels, v0,
             v1);
      if (g.count == 0) continue;
      T* tile_grad = grad_isect + begin * row;
      // Zeroed here, by the thread that owns the rows, rather than up front: cache-warm and
      // parallel.
      std::fill(tile_grad, tile_grad + g.count * row, T(0));
      int32_t max_last = 0;
      for (int64_t v = v0; v < v1; ++v) {
        for (int64_t u = u0; u < u1; ++u) {
          const int64_t k = (v - v0) * kTile + (u - u0), pix = v * width + u;
          last[k] = n_contrib[pix];
          max_last = std::max(max_last, last[k]);
          trans[k] = final_t[pix];
          const T* gc = grad_out + pix * channels;
          T bg_dot = T(0);
          for (int64_t ch = 0; ch < channels; ++ch) bg_dot += bg[ch] * gc[ch];
          // The part of dL/dalpha_j that only depends on T_N: background and alpha output.
          tail[k] = (grad_alpha[pix] - bg_dot) * final_t[pix];
        }
      }
      std::fill(behind.begin(), behind.end(), T(0));
      // Back to front; each pixel only takes the Gaussians before its `last`.
      for (int64_t j = max_last - 1; j >= 0; --j) {
        const Splat<T> sp = splat_of(g, j);
        const T* __restrict c = g.col.data() + j * channels;
        T* __restrict gr = tile_grad + j * row;
        T g_mx = 0, g_my = 0, g_a = 0, g_b = 0, g_c = 0, g_op = 0;
        for (int64_t v = g.row_lo[j]; v <= g.row_hi[j]; ++v) {
          const T py = T(v) + T(0.5);
          int64_t lo, hi;
          if (!g.row_span(j, double(py), u0, u1, lo, hi)) continue;
          for (int64_t u = lo; u <= hi; ++u) {
            const int64_t k = (v - v0) * kTile + (u - u0);
            if (j >= last[k]) continue;
            T dx, dy, vis, alpha;
            if (!pair_alpha(sp, T(u) + T(0.5), py, dx, dy, vis, alpha)) continue;
            const T inv_one_minus = T(1) / (T(1) - alpha);
            trans[k] *= inv_one_minus;  // now T before j
            const T w = alpha * trans[k];
            const T* __restrict gc = grad_out + (v * width + u) * channels;
            T g_dot_c = T(0);
            for (int64_t ch = 0; ch < channels; ++ch) {
              g_dot_c += gc[ch] * c[ch];
              gr[kGColor + ch] += w * gc[ch];
            }
            const T d_alpha = g_dot_c * trans[k] + (tail[k] - behind[k]) * inv_one_minus;
            behind[k] += w * g_dot_c;
            if (sp.op * vis > kAlphaMax<T>) continue;  // clamped: alpha is flat there
            g_op += d_alpha * vis;
            const T d_sigma = -d_alpha * sp.op * vis;
            g_mx += d_sigma * (sp.a * dx + sp.b * dy);
            g_my += d_sigma * (sp.b * dx + sp.c * dy);
            g_a += d_sigma * T(0.5) * dx * dx;
            g_b += d_sigma * dx * dy;
            g_c += d_sigma * T(0.5) * dy * dy;
          }
        }
        gr[kGMeanX] += g_mx;
        gr[kGMeanY] += g_my;
        gr[kGConicA] += g_a;
        gr[kGConicB] += g_b;
        gr[kGConicC] += g_c;
        gr[kGOpacity] += g_op;
      }
    }
  }
}

// Sums the per-intersection rows into per-Gaussian rows. Each thread owns a contiguous range of
// Gaussians and scans all intersections, adding only its own: no two threads write one row, and
// the order of the additions (intersection order) is fixed, so the result is deterministic.
// (torch's index_add_ was ~10x slower here: it does not parallelise this shape on the CPU.)
template <typename T>
void sum_intersections(const T* grad_isect, const int32_t* ids, int64_t n_isect, int64_t n,
                       int64_t row, T* grad) {
#pragma omp parallel num_threads(num_threads())
  {
    // The team may be smaller than asked for (nested regions): split by its actual size.
    const int64_t team = omp_get_num_threads();
    const int64_t part = (n + team - 1) / team;
    const int64_t lo = part * omp_get_thread_num(), hi = std::min(n, lo + part);
    for (int64_t k = 0; k < n_isect; ++k) {
      const int64_t g = ids[k];
      if (g < lo || g >= hi) continue;
      const T* src = grad_isect + k * row;
      T* dst = grad + g * row;
      for (int64_t c = 0; c < row; ++c) dst[c] += src[c];
    }
  }
}

std::vector<torch::Tensor> rasterize_backward(
    torch::Tensor means2d, torch::Tensor conics, torch::Tensor colors, torch::Tensor opacities,
    torch::Tensor background, torch::Tensor offsets, torch::Tensor ids, torch::Tensor final_t,
    torch::Tensor n_contrib, torch::Tensor grad_out, torch::Tensor grad_alpha, int64_t width,
    int64_t height) {
  for (auto& [t, name] :
       {std::pair{means2d, "means2d"}, {conics, "conics"}, {colors, "colors"},
        {opacities, "opacities"}, {background, "background"}, {offsets, "tile_offsets"},
        {ids, "tile_ids"}, {final_t, "final_t"}, {n_contrib, "n_contrib"},
        {grad_out, "grad_colors"}, {grad_alpha, "grad_alphas"}})
    check_cpu_contiguous(t, name);
  const int64_t n = means2d.size(0);
  const int64_t channels = colors.size(1);
  const int64_t n_isect = ids.size(0);
  auto grad_isect = torch::empty({n_isect, kGColor + channels}, colors.options());
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "rasterize_backward", [&] {
    backward_impl<scalar_t>(
        means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(), colors.data_ptr<scalar_t>(),
        opacities.data_ptr<scalar_t>(), background.data_ptr<scalar_t>(),
        offsets.data_ptr<int64_t>(), ids.data_ptr<int32_t>(), final_t.data_ptr<scalar_t>(),
        n_contrib.data_ptr<int32_t>(), grad_out.data_ptr<scalar_t>(),
        grad_alpha.data_ptr<scalar_t>(), channels, width, height,
        grad_isect.data_ptr<scalar_t>());
  });
  auto grad = torch::zeros({n, kGColor + channels}, colors.options());
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "sum_intersections", [&] {
    sum_intersections<scalar_t>(grad_isect.data_ptr<scalar_t>(), ids.data_ptr<int32_t>(), n_isect,
                                n, kGColor + channels, grad.data_ptr<scalar_t>());
  });
  return {grad.slice(1, kGMeanX, kGMeanY + 1), grad.slice(1, kGConicA, kGConicC + 1),
          grad.slice(1, kGColor), grad.select(1, kGOpacity)};
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "cgc CPU Gaussian rasterizer (see cgc_core/render/cpu.py)";
  m.def("bin_gaussians", &bin_gaussians, "per-tile depth-ordered Gaussian lists",
        py::arg("depths"), py::arg("rects"), py::arg("tiles_x"), py::arg("tiles_y"));
  m.def("rasterize_forward", &rasterize_forward, "forward rasterization");
  m.def("rasterize_backward", &rasterize_backward, "backward rasterization");
}
