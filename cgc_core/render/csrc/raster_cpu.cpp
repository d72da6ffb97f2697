// Tiled Gaussian-splatting rasterizer for the CPU: binning, forward and hand-written backward.
//
// The semantics are exactly those of cgc_core/render/reference.py (the oracle); see its module
// docstring. Projection (means2d, conics, depths, radii, tile rects) happens before this is called
// (project.py in torch, or project_cpu.cpp for renders without gradients), so this file only
// sees screen-space Gaussians.
//
// Layout: every pass walks tiles (16 x 16 pixels) in parallel with OpenMP (as many threads as
// torch.get_num_threads()), dynamic schedule because tile costs vary by orders of magnitude
// (empty sky vs a dense object). What a Gaussian needs per pixel is computed once per call, not
// once per tile it touches (make_splats). A tile takes its Gaussians in depth order and splats
// each onto the rows it can reach; a row is 16 *lanes* (its pixels), and everything per pixel is
// written as fixed-length, branch-free loops over the lanes that the compiler turns into SIMD:
// the Gaussian's alpha at all 16 pixels at once (with an exp the compiler can vectorise,
// splat_exp), the transmittance update, and the colour blend into a channel-major accumulator.
// Lanes where the Gaussian is negligible or whose pixel already stopped are masked, not skipped.
// Pixel state lives in per-thread buffers reused across tiles: nothing is allocated per pixel.
//
// Gradients are accumulated per *intersection* (one row per (tile, Gaussian) pair): a tile is
// handled by exactly one thread, so its rows are written race-free with no atomics, and the
// per-Gaussian sum is a second parallel pass where each thread owns a range of Gaussians
// (sum_intersections). Unlike per-thread [N, D] buffers this needs memory proportional to the
// work, not to N x threads, and the summation order does not depend on the schedule, so the
// gradients are deterministic run to run.
//
// Forward and backward decide "does Gaussian j touch pixel k" with the same code on the same
// inputs (Splat::rows, then pair_alphas), so they agree bit for bit on every skip and stop. The
// build turns off floating-point contraction (setup.py) so that no FMA can round one copy of the
// inlined code differently from the other.

#include <torch/extension.h>

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <vector>

namespace {

constexpr int kTile = 16;  // must equal project.TILE_SIZE
constexpr int kPix = kTile * kTile;

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

// exp(x) in float32 for the splatting weights, written so that a loop over lanes vectorises
// (libm's expf is a call per element and was ~20% of the forward). Only x in [-87, 0] matters
// here (x = -sigma with 0 <= sigma); other x are clamped. x = n ln2 + r with |r| <= ln2 / 2
// (Cody-Waite: ln2 split into a short head, so n * head is exact, and a tail); exp(r) is its
// Taylor series to degree 7 (truncation < 1e-8 relative, below float's 6e-8 ulp); 2^n is added
// to the exponent bits. Within 1 ulp of float64 exp on [-5.6, 0] (checked over 2M points);
// test_parity.py holds the rendered alphas to 2 ulp of float64 truth.
inline float splat_exp(float x) {
  x = std::min(std::max(x, -87.0f), 0.0f);
  constexpr float kShift = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  const float t = x * 1.44269504088896341f + kShift;
  const float n = t - kShift;  // round(x / ln 2), exact
  const float r = (x - n * 0.693359375f) - n * -2.12194440e-4f;
  float p = 1.98412698e-4f;
  p = p * r + 1.38888889e-3f;
  p = p * r + 8.33333333e-3f;
  p = p * r + 4.16666667e-2f;
  p = p * r + 1.66666667e-1f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // t's low mantissa bits hold n: adding n to p's exponent field scales it by 2^n.
  const int32_t n_bits = std::bit_cast<int32_t>(t) - 0x4B400000;
  return std::bit_cast<float>(std::bit_cast<int32_t>(p) + n_bits * (1 << 23));
}
// float64 (used by the tests' tight parity checks) keeps libm's exp.
inline double splat_exp(double x) { return std::exp(x); }

// What one Gaussian needs to be splatted, computed once per call (make_splats).
template <typename T>
struct Splat {
  T mx, my, a, b, c, op;
  // opacity exp(-sigma) < 1/255  <=>  sigma > log(255 opacity): beyond this (plus slack) a pair
  // is skipped; -1 for a Gaussian that is never visible.
  T skip_sigma;
  // Half the vertical extent of {d : sigma(d) <= skip_sigma}, in double and widened slightly so
  // that float rounding of sigma can never put a kept pair outside it; negative for a Gaussian
  // that is never visible, +inf when the conic is degenerate (no closed form).
  double row_half;

  // Rows [lo, hi] of [v0, v1) whose centre can hold a pair with sigma <= skip_sigma: for
  // sigma = 0.5 d^T Q d that extent is sqrt(2 s (Q^-1)_yy), (Q^-1)_yy = a / det Q. Rows outside
  // would fail the pair rule at every pixel, so skipping them changes no result. (Clipping the
  // row to the ellipse's columns as well was measured slower: a double sqrt per row costs more
  // than the 16-lane test it would narrow.)
  bool rows(int64_t v0, int64_t v1, int64_t& lo, int64_t& hi) const {
    if (row_half < 0) return false;
    lo = std::max(v0, ceil_int(double(my) - row_half - 0.5));
    hi = std::min(v1 - 1, floor_int(double(my) + row_half - 0.5));
    return lo <= hi;
  }
};

inline int num_threads() { return std::max(1, at::get_num_threads()); }

template <typename T>
std::vector<Splat<T>> make_splats(const T* means2d, const T* conics, const T* opac, int64_t n) {
  std::vector<Splat<T>> splats(n);
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t g = 0; g < n; ++g) {
    Splat<T>& s = splats[g];
    s.mx = means2d[2 * g];
    s.my = means2d[2 * g + 1];
    s.a = conics[3 * g];
    s.b = conics[3 * g + 1];
    s.c = conics[3 * g + 2];
    s.op = opac[g];
    s.skip_sigma = s.op > T(0) ? std::log(T(255) * s.op) + kSkipSlack<T> : T(-1);
    const double sk = s.skip_sigma, a = s.a, b = s.b, c = s.c, det = a * c - b * b;
    if (!(sk >= 0))
      s.row_half = -1.0;
    else if (det > 0 && a > 0 && c > 0)
      s.row_half = std::sqrt(2.0 * sk * a / det) * 1.001 + 1e-3;
    else
      s.row_half = INFINITY;
  }
  return splats;
}

// Tile lists are in depth order, so consecutive Gaussians of a tile lie anywhere in memory and
// each first touch is a cache miss that stalls the row loops (~25% of the forward, measured with
// perf): ask for the Gaussian a few places ahead in the list while working on this one.
constexpr int64_t kPrefetchAhead = 8;
template <typename T>
inline void prefetch_gaussian(const Splat<T>* splats, const T* colors, int64_t channels,
                              int64_t gid) {
  __builtin_prefetch(splats + gid);
  __builtin_prefetch(colors + gid * channels);
  __builtin_prefetch(colors + (gid + 1) * channels - 1);
}

// The per-(pixel, Gaussian) rule, for the 16 lanes of a row at once: pixel (u0 + i, py - 0.5)
// passes when 0 <= sigma <= skip_sigma and the clamped alpha is at least 1/255; vis = exp(-sigma).
// The operation order matches reference.py so float32 rounding agrees. Lanes that fail get
// arbitrary (finite) vis and alpha.
template <typename T>
inline void pair_alphas(const Splat<T>& s, T py, int64_t u0, T* __restrict vis,
                        T* __restrict alpha, int32_t* __restrict pass) {
  // Local copies: the compiler cannot prove that the stores below leave s alone, and a load
  // from memory inside the loop blocks vectorisation.
  const T mx = s.mx, a = s.a, b = s.b, c = s.c, op = s.op, skip_sigma = s.skip_sigma;
  const T dy = s.my - py;
  // A 32-bit column: 64-bit integer to float conversions do not vectorise on x86.
  const int32_t col0 = int32_t(u0);
#pragma omp simd
  for (int32_t i = 0; i < kTile; ++i) {
    const T dx = mx - (T(col0 + i) + T(0.5));
    const T sigma = T(0.5) * (a * dx * dx + c * dy * dy) + b * dx * dy;
    const T v = splat_exp(-sigma);
    const T raw = op * v;
    vis[i] = v;
    alpha[i] = std::min(kAlphaMax<T>, raw);
    // Tested on the unclamped alpha (the same, as ALPHA_MAX > ALPHA_MIN): GCC does not
    // vectorise a compare of the clamped value.
    pass[i] = int32_t(sigma >= T(0)) & int32_t(sigma <= skip_sigma) & int32_t(raw >= kAlphaMin<T>);
  }
}

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
void forward_impl(const Splat<T>* splats, const T* colors, const T* bg, const int64_t* offsets,
                  const int32_t* ids, int64_t channels, int64_t width, int64_t height, T* out,
                  T* final_t, int32_t* n_contrib) {
  const int64_t tiles_x = (width + kTile - 1) / kTile;
  const int64_t tiles_y = (height + kTile - 1) / kTile;
  const int64_t num_tiles = tiles_x * tiles_y;
#pragma omp parallel num_threads(num_threads())
  {
    // Per-thread pixel state of one tile (index k = row * kTile + lane), reused across tiles.
    // The accumulator is channel-major (acc[ch * kPix + k]) so that blending one Gaussian into a
    // row is, per channel, one 16-lane multiply-add.
    std::vector<T> acc(kPix * channels);
    alignas(64) T trans[kPix];
    alignas(64) int32_t last[kPix], live[kPix];
    alignas(64) T vis[kTile], alpha[kTile], weight[kTile];
    alignas(64) int32_t pass[kTile];
    int32_t row_live[kTile];
#pragma omp for schedule(dynamic, 1)
    for (int64_t tile = 0; tile < num_tiles; ++tile) {
      const int64_t u0 = (tile % tiles_x) * kTile, v0 = (tile / tiles_x) * kTile;
      const int64_t u1 = std::min(u0 + kTile, width), v1 = std::min(v0 + kTile, height);
      const int64_t cols = u1 - u0, rows = v1 - v0;
      std::fill(acc.begin(), acc.end(), T(0));
      for (int k = 0; k < kPix; ++k) {
        trans[k] = T(1);
        last[k] = 0;
        live[k] = (k / kTile < rows) & (k % kTile < cols);  // lanes past a partial tile: dead
      }
      for (int r = 0; r < kTile; ++r) row_live[r] = r < rows ? int32_t(cols) : 0;
      int64_t active = rows * cols;
      const int64_t begin = offsets[tile], count = offsets[tile + 1] - begin;
      for (int64_t j = 0; j < count && active > 0; ++j) {
        if (j + kPrefetchAhead < count)
          prefetch_gaussian(splats, colors, channels, ids[begin + j + kPrefetchAhead]);
        const int64_t gid = ids[begin + j];
        const Splat<T>& s = splats[gid];
        const T* __restrict c = colors + gid * channels;
        int64_t v_lo, v_hi;
        if (!s.rows(v0, v1, v_lo, v_hi)) continue;
        for (int64_t v = v_lo; v <= v_hi; ++v) {
          const int64_t r = v - v0;
          if (row_live[r] == 0) continue;  // every pixel of the row has stopped
          const T py = T(v) + T(0.5);
          pair_alphas(s, py, u0, vis, alpha, pass);
          T* __restrict tr = trans + r * kTile;
          int32_t* __restrict la = last + r * kTile;
          int32_t* __restrict li = live + r * kTile;
          int32_t finished = 0, added = 0;
          for (int i = 0; i < kTile; ++i) {
            const T next_t = tr[i] * (T(1) - alpha[i]);
            const int32_t hit = pass[i] & li[i];
            // A pixel stops before the Gaussian that would take T to or below T_MIN.
            const int32_t stop = hit & int32_t(next_t <= kTMin<T>);
            const int32_t add = hit & (stop ^ 1);
            weight[i] = add ? alpha[i] * tr[i] : T(0);
            tr[i] = add ? next_t : tr[i];
            la[i] = add ? int32_t(j + 1) : la[i];
            li[i] &= stop ^ 1;
            finished += stop;
            added += add;
          }
          row_live[r] -= finished;
          active -= finished;
          if (added == 0) continue;
          for (int64_t ch = 0; ch < channels; ++ch) {
            const T cc = c[ch];
            T* __restrict a = acc.data() + ch * kPix + r * kTile;
            // Selected, not multiplied by a zero weight: a non-finite colour must not leak into
            // pixels the Gaussian does not touch.
            for (int i = 0; i < kTile; ++i) a[i] = weight[i] != T(0) ? a[i] + weight[i] * cc : a[i];
          }
        }
      }
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t i = 0; i < cols; ++i) {
          const int64_t k = r * kTile + i, pix = (v0 + r) * width + u0 + i;
          for (int64_t ch = 0; ch < channels; ++ch)
            out[pix * channels + ch] = acc[ch * kPix + k] + trans[k] * bg[ch];
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
    const auto splats = make_splats<scalar_t>(means2d.data_ptr<scalar_t>(),
                                              conics.data_ptr<scalar_t>(),
                                              opacities.data_ptr<scalar_t>(), means2d.size(0));
    forward_impl<scalar_t>(splats.data(), colors.data_ptr<scalar_t>(),
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
// As in the forward, a Gaussian is handled a row (16 lanes) at a time; its gradient is summed
// per lane over its rows and reduced across lanes once, when the Gaussian is done.

// Columns of the per-intersection gradient rows.
constexpr int64_t kGMeanX = 0, kGMeanY = 1, kGConicA = 2, kGConicB = 3, kGConicC = 4,
                  kGOpacity = 5, kGColor = 6;

template <typename T>
void backward_impl(const Splat<T>* splats, const T* colors, const T* bg, const int64_t* offsets,
                   const int32_t* ids, const T* final_t, const int32_t* n_contrib,
                   const T* grad_out, const T* grad_alpha, int64_t channels, int64_t width,
                   int64_t height, T* grad_isect) {
  const int64_t tiles_x = (width + kTile - 1) / kTile;
  const int64_t tiles_y = (height + kTile - 1) / kTile;
  const int64_t num_tiles = tiles_x * tiles_y;
  const int64_t row = kGColor + channels;
#pragma omp parallel num_threads(num_threads())
  {
    // Per-pixel state (k = row * kTile + lane). behind[k] = g . S for pixel k, with g = dL/dC of
    // the pixel and S the colour blended behind the current Gaussian: S only ever enters
    // dL/dalpha through that dot product, so one scalar per pixel replaces a C-vector.
    // g_out holds the tile's dL/dC channel-major, like the forward's accumulator.
    std::vector<T> g_out(kPix * channels), lane_color(kTile * channels);
    alignas(64) T behind[kPix], trans[kPix], tail[kPix];
    alignas(64) int32_t last[kPix];
    alignas(64) T vis[kTile], alpha[kTile], dot[kTile];
    alignas(64) T lane_mx[kTile], lane_my[kTile], lane_a[kTile], lane_b[kTile], lane_c[kTile],
        lane_op[kTile];
    alignas(64) int32_t pass[kTile];
#pragma omp for schedule(dynamic, 1)
    for (int64_t tile = 0; tile < num_tiles; ++tile) {
      const int64_t begin = offsets[tile], count = offsets[tile + 1] - begin;
      if (count == 0) continue;
      const int64_t u0 = (tile % tiles_x) * kTile, v0 = (tile / tiles_x) * kTile;
      const int64_t u1 = std::min(u0 + kTile, width), v1 = std::min(v0 + kTile, height);
      const int64_t cols = u1 - u0, rows = v1 - v0;
      T* tile_grad = grad_isect + begin * row;
      // Zeroed here, by the thread that owns the rows, rather than up front: cache-warm and
      // parallel.
      std::fill(tile_grad, tile_grad + count * row, T(0));
      // Lanes past a partial tile get last = 0: no Gaussian ever reaches them.
      std::fill(g_out.begin(), g_out.end(), T(0));
      for (int k = 0; k < kPix; ++k) {
        last[k] = 0;
        trans[k] = T(1);
        tail[k] = T(0);
        behind[k] = T(0);
      }
      int32_t max_last = 0;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t i = 0; i < cols; ++i) {
          const int64_t k = r * kTile + i, pix = (v0 + r) * width + u0 + i;
          last[k] = n_contrib[pix];
          max_last = std::max(max_last, last[k]);
          trans[k] = final_t[pix];
          const T* gc = grad_out + pix * channels;
          T bg_dot = T(0);
          for (int64_t ch = 0; ch < channels; ++ch) {
            bg_dot += bg[ch] * gc[ch];
            g_out[ch * kPix + k] = gc[ch];
          }
          // The part of dL/dalpha_j that only depends on T_N: background and alpha output.
          tail[k] = (grad_alpha[pix] - bg_dot) * final_t[pix];
        }
      }
      // Back to front; each pixel only takes the Gaussians before its `last`.
      for (int64_t j = max_last - 1; j >= 0; --j) {
        if (j >= kPrefetchAhead)
          prefetch_gaussian(splats, colors, channels, ids[begin + j - kPrefetchAhead]);
        const int64_t gid = ids[begin + j];
        const Splat<T>& s = splats[gid];
        const T* __restrict c = colors + gid * channels;
        int64_t v_lo, v_hi;
        if (!s.rows(v0, v1, v_lo, v_hi)) continue;
        std::fill(lane_color.begin(), lane_color.end(), T(0));
        for (int i = 0; i < kTile; ++i)
          lane_mx[i] = lane_my[i] = lane_a[i] = lane_b[i] = lane_c[i] = lane_op[i] = T(0);
        int32_t touched = 0;
        for (int64_t v = v_lo; v <= v_hi; ++v) {
          const int64_t r = v - v0;
          const T py = T(v) + T(0.5);
          pair_alphas(s, py, u0, vis, alpha, pass);
          const int32_t* __restrict la = last + r * kTile;
          int32_t hits = 0;
          for (int i = 0; i < kTile; ++i) {
            pass[i] &= int32_t(j < la[i]);
            hits += pass[i];
          }
          if (hits == 0) continue;
          touched = 1;
          for (int i = 0; i < kTile; ++i) dot[i] = T(0);
          for (int64_t ch = 0; ch < channels; ++ch) {
            const T cc = c[ch];
            const T* __restrict go = g_out.data() + ch * kPix + r * kTile;
            for (int i = 0; i < kTile; ++i) dot[i] += go[i] * cc;
          }
          T* __restrict tr = trans + r * kTile;
          T* __restrict be = behind + r * kTile;
          const T* __restrict ta = tail + r * kTile;
          const T dy = s.my - py, mx = s.mx, con_a = s.a, con_b = s.b, con_c = s.c, op = s.op;
          const int32_t col0 = int32_t(u0);
          for (int32_t i = 0; i < kTile; ++i) {
            const T inv_one_minus = T(1) / (T(1) - alpha[i]);
            const T t_before = tr[i] * inv_one_minus;  // T before j
            const T w = alpha[i] * t_before;
            const T d_alpha = dot[i] * t_before + (ta[i] - be[i]) * inv_one_minus;
            const int32_t hit = pass[i];
            tr[i] = hit ? t_before : tr[i];
            be[i] = hit ? be[i] + w * dot[i] : be[i];
            // Where alpha is clamped at ALPHA_MAX it is flat: no opacity or shape gradient.
            const int32_t shape = hit & int32_t(op * vis[i] <= kAlphaMax<T>);
            const T dx = mx - (T(col0 + i) + T(0.5));
            const T d_sigma = -d_alpha * op * vis[i];
            lane_op[i] += shape ? d_alpha * vis[i] : T(0);
            lane_mx[i] += shape ? d_sigma * (con_a * dx + con_b * dy) : T(0);
            lane_my[i] += shape ? d_sigma * (con_b * dx + con_c * dy) : T(0);
            lane_a[i] += shape ? d_sigma * T(0.5) * dx * dx : T(0);
            lane_b[i] += shape ? d_sigma * dx * dy : T(0);
            lane_c[i] += shape ? d_sigma * T(0.5) * dy * dy : T(0);
            dot[i] = hit ? w : T(0);  // reused: the colour weight of the hit lanes
          }
          for (int64_t ch = 0; ch < channels; ++ch) {
            const T* __restrict go = g_out.data() + ch * kPix + r * kTile;
            T* __restrict lc = lane_color.data() + ch * kTile;
            for (int i = 0; i < kTile; ++i) lc[i] += dot[i] * go[i];
          }
        }
        if (!touched) continue;
        T* __restrict gr = tile_grad + j * row;
        T sums[kGColor] = {0, 0, 0, 0, 0, 0};
        for (int i = 0; i < kTile; ++i) {
          sums[kGMeanX] += lane_mx[i];
          sums[kGMeanY] += lane_my[i];
          sums[kGConicA] += lane_a[i];
          sums[kGConicB] += lane_b[i];
          sums[kGConicC] += lane_c[i];
          sums[kGOpacity] += lane_op[i];
        }
        for (int64_t q = 0; q < kGColor; ++q) gr[q] = sums[q];
        for (int64_t ch = 0; ch < channels; ++ch) {
          T sum = T(0);
          for (int i = 0; i < kTile; ++i) sum += lane_color[ch * kTile + i];
          gr[kGColor + ch] = sum;
        }
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
    const auto splats = make_splats<scalar_t>(means2d.data_ptr<scalar_t>(),
                                              conics.data_ptr<scalar_t>(),
                                              opacities.data_ptr<scalar_t>(), n);
    backward_impl<scalar_t>(
        splats.data(), colors.data_ptr<scalar_t>(), background.data_ptr<scalar_t>(),
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

// project_cpu.cpp
std::vector<torch::Tensor> project_forward(torch::Tensor means, torch::Tensor quats,
                                           torch::Tensor scales, torch::Tensor viewmat,
                                           torch::Tensor K, int64_t width, int64_t height,
                                           double near, double far, double eps2d);
std::vector<torch::Tensor> project_backward(torch::Tensor means, torch::Tensor quats,
                                            torch::Tensor scales, torch::Tensor viewmat,
                                            torch::Tensor K, int64_t width, int64_t height,
                                            double near, double far, double eps2d,
                                            torch::Tensor g_means2d, torch::Tensor g_conics,
                                            torch::Tensor g_depths);

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "cgc CPU Gaussian rasterizer (see cgc_core/render/cpu.py)";
  m.def("bin_gaussians", &bin_gaussians, "per-tile depth-ordered Gaussian lists",
        py::arg("depths"), py::arg("rects"), py::arg("tiles_x"), py::arg("tiles_y"));
  m.def("rasterize_forward", &rasterize_forward, "forward rasterization");
  m.def("rasterize_backward", &rasterize_backward, "backward rasterization");
  m.def("project_forward", &project_forward, "EWA projection");
  m.def("project_backward", &project_backward, "gradients of the EWA projection");
}
