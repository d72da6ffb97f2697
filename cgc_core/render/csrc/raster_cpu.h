// Tiled Gaussian-splatting rasterizer for the CPU: binning, forward and hand-written backward.
//
// The semantics are exactly those of cgc_core/render/reference.py (the oracle); see its module
// docstring. Projection (means2d, conics, depths, radii, tile rects) happens before the
// rasterizer is called (project.py in torch, or project_cpu.cpp for renders without gradients),
// so the rasterizer only sees screen-space Gaussians.
//
// Files: this header holds what several passes share (constants, the Splat struct, the
// per-pixel rule) and declares every function the module exports; bin_cpu.cpp (binning),
// forward_cpu.cpp, backward_cpu.cpp (backward and the per-Gaussian reduction), project_cpu.cpp
// (the fused EWA projection), sh_cpu.cpp (SH colour) and bindings.cpp (the Python module) hold
// the rest.
//
// Binning: a Gaussian is listed in the tiles of its 3-sigma square (project.tile_rects) that
// also meet its alpha box, the bounding box of {alpha >= ALPHA_MIN}, widened to cover float
// rounding (alpha_tile_rect below, the twin of project.alpha_tile_rects). Tiles outside the box
// hold no pixel that passes the per-pixel rule, so dropping them changes no result; on trained
// Gaussians (anisotropic, mostly faint) it removes ~30% of the (tile, Gaussian) pairs.
//
// Layout: every pass walks tiles (16 x 16 pixels) in parallel with OpenMP (as many threads as
// torch.get_num_threads()), dynamic schedule because tile costs vary by orders of magnitude
// (empty sky vs a dense object). What a Gaussian needs per pixel is computed once per call, not
// once per tile it touches (make_splats). A tile takes its Gaussians in depth order and splats
// each onto the rows it can reach; a row is 16 *lanes* (its pixels), and everything per pixel is
// written as fixed-length, branch-free loops over the lanes that the compiler turns into SIMD:
// the Gaussian's alpha at all 16 pixels at once (with an exp the compiler can vectorise,
// splat_exp), the transmittance update, and the colour blend into a channel-major accumulator.
// Lanes where the Gaussian is negligible or whose pixel already stopped are masked, not skipped,
// except that a Gaussian whose columns in the tile fit in half a row is splatted on an 8-lane
// window (Splat::narrow): half the lane work, and the same result, as the lanes left out would
// all fail the pair rule. A Gaussian's rows' alphas are computed in one loop before they are
// used, so that the CPU overlaps their exp polynomials.
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
// inputs (Splat::rows, then pair_alphas, both defined here), so they agree bit for bit on every
// skip and stop. The build turns off floating-point contraction (setup.py) so that no FMA can
// round the copy inlined into forward_cpu.cpp differently from the one in backward_cpu.cpp.

#pragma once

#include <torch/extension.h>

#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <optional>
#include <vector>

namespace cgc::render {

constexpr int kTile = 16;  // must equal project.TILE_SIZE (exported as _raster_cpu.TILE_SIZE)
constexpr int kPix = kTile * kTile;

// Constants of project.py, in the arithmetic type, so float32 compares like torch's float32.
template <typename T>
constexpr T kAlphaMin = T(1.0 / 255.0);
template <typename T>
constexpr T kAlphaMax = T(0.99);
template <typename T>
constexpr T kTMin = T(1e-4);
// Slack on the cheap exp-free rejection test below: the exact test still decides near the edge.
template <typename T>
constexpr T kSkipSlack = T(1e-3);

// floor / ceil to an integer without a libm call (no SSE4.1 rounding instructions in the
// baseline x86-64 target); arguments are clamped first so the cast cannot overflow.
inline int64_t floor_int(double x) {
  x = std::min(std::max(x, -1e9), 1e9);
  const int64_t t = int64_t(x);
  return t - (double(t) > x);
}
inline int64_t ceil_int(double x) { return -floor_int(-x); }

// exp(x) in float32 for the splatting weights, written so that a loop over lanes vectorises
// (libm's expf is a call per element and was ~20% of the forward). x is first clamped to
// [lo, 0]; only that range matters here (x = -sigma with 0 <= sigma), and lo >= kExpMin keeps
// the result normal. x = n ln2 + r with |r| <= ln2 / 2 (Cody-Waite: ln2 split into a short head,
// so n * head is exact, and a tail); exp(r) is its Taylor series to degree 7 (truncation < 1e-8
// relative, below float's 6e-8 ulp); 2^n is added to the exponent bits. Within 1 ulp of float64
// exp on [-5.6, 0] (checked over 2M points); test_parity.py holds the rendered alphas to 2 ulp
// of float64 truth.
template <typename T>
constexpr T kExpMin = T(-87);
template <>
constexpr double kExpMin<double> = -700.0;
inline float splat_exp(float x, float lo) {
  x = std::min(std::max(x, lo), 0.0f);
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
inline double splat_exp(double x, double lo) { return std::exp(std::max(x, lo)); }

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
  // The same for the horizontal extent (sqrt(2 s (Q^-1)_xx), (Q^-1)_xx = c / det Q).
  double col_half;

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

  // The lanes of a tile row (columns [u0, u1)) worth computing: a window of kNarrow lanes
  // starting at lane `start` when every column that can hold a pair fits in one, else the whole
  // row (start 0). Lanes outside fail the pair rule (the same bound as `rows`), so leaving them
  // out changes no result; a Gaussian narrower than half a tile then costs half the lane work.
  bool narrow(int64_t u0, int64_t u1, int& start) const;
};

// Lanes of a narrow window (see Splat::narrow).
constexpr int kNarrow = kTile / 2;

template <typename T>
bool Splat<T>::narrow(int64_t u0, int64_t u1, int& start) const {
  const int64_t lo = std::max(u0, ceil_int(double(mx) - col_half - 0.5));
  const int64_t hi = std::min(u1 - 1, floor_int(double(mx) + col_half - 0.5));
  if (!(col_half < kTile) || hi - lo >= kNarrow) {
    start = 0;
    return false;
  }
  start = int(std::min(std::max(lo - u0, int64_t(0)), int64_t(kTile - kNarrow)));
  return true;
}

// The alpha box of the binning rule: the C++ twin of project.alpha_tile_rects (see its docstring
// for the maths), in the same float64 operations in the same order, so that both backends bin
// alike. Narrows rect (x0, y0, x1, y1) in place to the tiles that can hold a pixel whose alpha
// reaches ALPHA_MIN in the kernel's arithmetic; an empty result becomes (0, 0, 0, 0). Pixels
// outside fail pair_alphas' rule, so dropping those (tile, Gaussian) pairs changes no result.
constexpr double kAlphaBoxSlack = 1e-3;              // project.ALPHA_BOX_SLACK
constexpr double kSigmaRounding = 16.0 / (1 << 23);  // project.SIGMA_ROUNDING

// Tiles [t0, t1) holding the pixels whose centres u + 0.5 lie in [lo, hi] (t1 = t0 if none).
inline void tiles_of_span(double lo, double hi, int64_t tiles, double& t0, double& t1) {
  const double first = std::ceil(lo - 0.5), last = std::floor(hi - 0.5);
  t0 = std::min(std::max(std::floor(first / kTile), 0.0), double(tiles));
  t1 = std::min(std::max(std::floor(last / kTile) + 1.0, 0.0), double(tiles));
  if (!(first <= last)) t1 = t0;
}

inline void alpha_tile_rect(double mx, double my, double a, double b, double c, double opacity,
                            int64_t tiles_x, int64_t tiles_y,
                            int32_t* rect) {  // [4] in/out (x0, y0, x1, y1)
  const double s = std::log(255.0 * opacity) + kAlphaBoxSlack;
  double box[4] = {0.0, 0.0, double(tiles_x), double(tiles_y)};
  // alpha <= opacity: below 1/255 (or NaN) no pixel ever passes. (No float lies between 1/255
  // and kAlphaMin<float>, so this is the float32 kernel's test too.)
  if (!(opacity >= 1.0 / 255.0 && s > 0)) {
    for (int k = 0; k < 4; ++k) rect[k] = 0;
    return;
  }
  const double det = a * c - b * b;
  const double kappa = (std::max(a, c) + std::abs(b)) * (a + c) / det;
  const double s_max = s / (1.0 - kSigmaRounding * kappa);
  const double half_x = std::sqrt(2.0 * s_max * c / det) * 1.001 + 1e-3;
  const double half_y = std::sqrt(2.0 * s_max * a / det) * 1.001 + 1e-3;
  const bool trusted = det > 0 && a > 0 && c > 0 && kSigmaRounding * kappa <= 0.25 &&
                       std::isfinite(half_x) && std::isfinite(half_y) && std::isfinite(mx) &&
                       std::isfinite(my);
  if (trusted) {
    tiles_of_span(mx - half_x, mx + half_x, tiles_x, box[0], box[2]);
    tiles_of_span(my - half_y, my + half_y, tiles_y, box[1], box[3]);
  }
  int32_t r[4] = {std::max(rect[0], int32_t(box[0])), std::max(rect[1], int32_t(box[1])),
                  std::min(rect[2], int32_t(box[2])), std::min(rect[3], int32_t(box[3]))};
  const bool empty = r[0] >= r[2] || r[1] >= r[3];
  for (int k = 0; k < 4; ++k) rect[k] = empty ? 0 : r[k];
}

inline int num_threads() { return std::max(1, at::get_num_threads()); }

template <typename T>
std::vector<Splat<T>> make_splats(const T* means2d,  // [N, 2]
                                  const T* conics,   // [N, 3]
                                  const T* opac,     // [N]
                                  int64_t n) {
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
    if (!(sk >= 0)) {
      s.row_half = s.col_half = -1.0;
    } else if (det > 0 && a > 0 && c > 0) {
      s.row_half = std::sqrt(2.0 * sk * a / det) * 1.001 + 1e-3;
      s.col_half = std::sqrt(2.0 * sk * c / det) * 1.001 + 1e-3;
    } else {
      s.row_half = s.col_half = INFINITY;
    }
  }
  return splats;
}

// Tile lists are in depth order, so consecutive Gaussians of a tile lie anywhere in memory and
// each first touch is a cache miss that stalls the row loops (~25% of the forward, measured with
// perf): ask for the Gaussian a few places ahead in the list while working on this one.
constexpr int64_t kPrefetchAhead = 8;
template <typename T>
inline void prefetch_gaussian(const Splat<T>* splats,  // [N]
                              const T* colors,         // [N, C]
                              int64_t channels, int64_t gid) {
  __builtin_prefetch(splats + gid);
  __builtin_prefetch(colors + gid * channels);
  __builtin_prefetch(colors + (gid + 1) * channels - 1);
}

// The per-(pixel, Gaussian) rule, for L lanes of a row at once (16, or a narrow window of 8
// starting at column u0): pixel (u0 + i, py - 0.5)
// passes when 0 <= sigma <= skip_sigma and the clamped alpha is at least 1/255; vis = exp(-sigma).
// The operation order matches reference.py so float32 rounding agrees. Lanes that fail get
// arbitrary (finite) vis and alpha.
template <int L, typename T>
inline void pair_alphas(const Splat<T>& s, T py, int64_t u0,
                        T* __restrict vis,           // [L] out: exp(-sigma)
                        T* __restrict alpha,         // [L] out: min(ALPHA_MAX, opacity vis)
                        int32_t* __restrict pass) {  // [L] out: 1 where the pair counts
  // Local copies: the compiler cannot prove that the stores below leave s alone, and a load
  // from memory inside the loop blocks vectorisation.
  const T mx = s.mx, a = s.a, b = s.b, c = s.c, op = s.op, skip_sigma = s.skip_sigma;
  // exp's argument is kept >= -(skip_sigma + 1), a value known only at run time: lanes beyond
  // skip_sigma fail anyway, and passing lanes are unchanged. With a constant floor (-87) GCC
  // hoisted opacity * exp(-87), a subnormal product whose microcode assist cost ~25% of the
  // forward; far-off lanes no longer make subnormal alphas either.
  const T exp_floor = std::max(-skip_sigma - T(1), kExpMin<T>);
  const T dy = s.my - py;
  // A 32-bit column: 64-bit integer to float conversions do not vectorise on x86.
  const int32_t col0 = int32_t(u0);
#pragma omp simd
  for (int32_t i = 0; i < L; ++i) {
    const T dx = mx - (T(col0 + i) + T(0.5));
    const T sigma = T(0.5) * (a * dx * dx + c * dy * dy) + b * dx * dy;
    const T v = splat_exp(-sigma, exp_floor);
    const T raw = op * v;
    vis[i] = v;
    alpha[i] = std::min(kAlphaMax<T>, raw);
    // Tested on the unclamped alpha (the same, as ALPHA_MAX > ALPHA_MIN): GCC does not
    // vectorise a compare of the clamped value.
    pass[i] = int32_t(sigma >= T(0)) & int32_t(sigma <= skip_sigma) & int32_t(raw >= kAlphaMin<T>);
  }
}

inline void check_cpu_contiguous(const torch::Tensor& t, const char* name) {
  TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// ---------------------------------------------------------------------------------------------
// The functions the module exports (bindings.cpp); arguments as cpu.py passes them. N Gaussians,
// C channels, T = tiles_x * tiles_y tiles, n_isect (tile, Gaussian) pairs. Floating tensors are
// all float32 or all float64.

// bin_cpu.cpp. Per-tile lists of Gaussian ids, each in front-to-back order. With means2d,
// conics and opacities, each rect is first narrowed to its alpha box (alpha_tile_rect).
// Returns {tile_offsets [T + 1] int64, tile_ids [n_isect] int32}.
std::vector<torch::Tensor> bin_gaussians(
    torch::Tensor depths,                       // [N] camera-space z
    torch::Tensor rects,                        // [N, 4] int32 tile rects
    int64_t tiles_x, int64_t tiles_y,           //
    std::optional<torch::Tensor> means2d,       // [N, 2] or None
    std::optional<torch::Tensor> conics,        // [N, 3] or None
    std::optional<torch::Tensor> opacities);    // [N] or None

// forward_cpu.cpp. Returns {colors [H, W, C], final_t [H, W], n_contrib [H, W] int32}.
std::vector<torch::Tensor> rasterize_forward(torch::Tensor means2d,     // [N, 2]
                                             torch::Tensor conics,      // [N, 3]
                                             torch::Tensor colors,      // [N, C]
                                             torch::Tensor opacities,   // [N]
                                             torch::Tensor background,  // [C]
                                             torch::Tensor offsets,     // [T + 1] int64
                                             torch::Tensor ids,         // [n_isect] int32
                                             int64_t width, int64_t height);

// backward_cpu.cpp. Returns the gradients {means2d [N, 2], conics [N, 3], colors [N, C],
// opacities [N]}.
std::vector<torch::Tensor> rasterize_backward(torch::Tensor means2d,     // [N, 2]
                                              torch::Tensor conics,      // [N, 3]
                                              torch::Tensor colors,      // [N, C]
                                              torch::Tensor opacities,   // [N]
                                              torch::Tensor background,  // [C]
                                              torch::Tensor offsets,     // [T + 1] int64
                                              torch::Tensor ids,         // [n_isect] int32
                                              torch::Tensor final_t,     // [H, W]
                                              torch::Tensor n_contrib,   // [H, W] int32
                                              torch::Tensor grad_out,    // [H, W, C] dL/dcolors
                                              torch::Tensor grad_alpha,  // [H, W] dL/dalphas
                                              int64_t width, int64_t height);

// project_cpu.cpp. Returns {means2d [N, 2], conics [N, 3], depths [N], radii [N] int32}.
std::vector<torch::Tensor> project_forward(torch::Tensor means,    // [N, 3]
                                           torch::Tensor quats,    // [N, 4] (w, x, y, z)
                                           torch::Tensor scales,   // [N, 3]
                                           torch::Tensor viewmat,  // [4, 4] world-to-camera
                                           torch::Tensor K,        // [3, 3]
                                           int64_t width, int64_t height, double near, double far,
                                           double eps2d);

// project_cpu.cpp. Returns the gradients {means [N, 3], quats [N, 4], scales [N, 3]}.
std::vector<torch::Tensor> project_backward(torch::Tensor means,    // [N, 3]
                                            torch::Tensor quats,    // [N, 4] (w, x, y, z)
                                            torch::Tensor scales,   // [N, 3]
                                            torch::Tensor viewmat,  // [4, 4] world-to-camera
                                            torch::Tensor K,        // [3, 3]
                                            int64_t width, int64_t height, double near, double far,
                                            double eps2d,
                                            torch::Tensor g_means2d,  // [N, 2]
                                            torch::Tensor g_conics,   // [N, 3]
                                            torch::Tensor g_depths);  // [N]

// sh_cpu.cpp. SH colour of degree 1..3 (cgc_core/model/sh.py's eval_sh, clamped at 0); rows of
// Gaussians with visible[g] == 0 are left at 0. Returns rgb [N, 3].
torch::Tensor sh_forward(int64_t degree,
                         torch::Tensor sh0,                      // [N, 1, 3]
                         torch::Tensor shN,                      // [N, K - 1, 3]
                         torch::Tensor dirs,                     // [N, 3] camera -> Gaussian
                         std::optional<torch::Tensor> visible);  // [N] int32 or None (all)

// sh_cpu.cpp. Returns the gradients {sh0 [N, 1, 3], shN [N, K - 1, 3], dirs [N, 3]}; 0 for the
// Gaussians with visible[g] == 0 and for coefficients beyond the degree.
std::vector<torch::Tensor> sh_backward(int64_t degree,
                                       torch::Tensor sh0,                     // [N, 1, 3]
                                       torch::Tensor shN,                     // [N, K - 1, 3]
                                       torch::Tensor dirs,                    // [N, 3]
                                       std::optional<torch::Tensor> visible,  // [N] int32 / None
                                       torch::Tensor grad_rgb);               // [N, 3] dL/drgb

}  // namespace cgc::render
