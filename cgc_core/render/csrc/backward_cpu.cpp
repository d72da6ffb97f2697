// Backward rasterization and the per-intersection -> per-Gaussian reduction (see raster_cpu.h).
//
// Backward: each pixel walks its contributors back to front, recovering the transmittance
// before Gaussian j as T_j = T_{j+1} / (1 - alpha_j) from the saved final T, and keeping
// S = sum of colour * weight of the Gaussians behind j. With C = sum_i c_i alpha_i T_i + T_N bg:
//   dC/dc_j             = alpha_j T_j
//   dC/dalpha_j         = c_j T_j - (S + T_N bg) / (1 - alpha_j)
//   d(1 - T_N)/dalpha_j = T_N / (1 - alpha_j)
// then alpha = opacity exp(-sigma) (no gradient where clamped at ALPHA_MAX) and
// sigma = 0.5 (a dx^2 + c dy^2) + b dx dy with d = mean2d - pixel centre.
// As in the forward, a Gaussian is handled a row (16 lanes) at a time; its gradient is summed
// per lane over its rows and reduced across lanes once, when the Gaussian is done.

#include <type_traits>

#include "raster_cpu.h"

namespace cgc::render {
namespace {

// Columns of the per-intersection gradient rows.
constexpr int64_t kGMeanX = 0, kGMeanY = 1, kGConicA = 2, kGConicB = 3, kGConicC = 4, kGOpacity = 5,
                  kGColor = 6;

template <typename T>
void backward_impl(const Splat<T>* splats,    // [N]
                   const T* colors,           // [N, C]
                   const T* bg,               // [C]
                   const int64_t* offsets,    // [T + 1]
                   const int32_t* ids,        // [n_isect]
                   const T* final_t,          // [H, W]
                   const int32_t* n_contrib,  // [H, W]
                   const T* grad_out,         // [H, W, C]
                   const T* grad_alpha,       // [H, W]
                   int64_t channels, int64_t width, int64_t height,
                   T* grad_isect) {  // [n_isect, kGColor + C] out: one row per intersection
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
    alignas(64) T vis_rows[kPix], alpha_rows[kPix], dot[kTile];
    alignas(64) T lane_mx[kTile], lane_my[kTile], lane_a[kTile], lane_b[kTile], lane_c[kTile],
        lane_op[kTile];
    alignas(64) int32_t pass_rows[kPix];
    int32_t row_last[kTile];  // per row: the largest `last` of its pixels
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
      for (int r = 0; r < kTile; ++r) row_last[r] = 0;
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t i = 0; i < cols; ++i) {
          const int64_t k = r * kTile + i, pix = (v0 + r) * width + u0 + i;
          last[k] = n_contrib[pix];
          row_last[r] = std::max(row_last[r], last[k]);
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
        // The Gaussian's rows on L lanes from lane `start` (all 16, or a narrow window); lanes
        // outside the window would add exact zeros, so they are left out, sums included.
        const auto gaussian_grad = [&](auto lanes, int start) {
          constexpr int L = decltype(lanes)::value;
          for (int64_t ch = 0; ch < channels; ++ch)
            for (int i = 0; i < L; ++i) lane_color[ch * kTile + i] = T(0);
          for (int i = 0; i < L; ++i)
            lane_mx[i] = lane_my[i] = lane_a[i] = lane_b[i] = lane_c[i] = lane_op[i] = T(0);
          // Every row's alphas first, then the rows' gradients: the rows are independent, and
          // computing them in one loop lets the CPU overlap their exp polynomials (one row at a
          // time it waited on the polynomial's latency).
          const int32_t j32 = int32_t(j);
          for (int64_t v = v_lo; v <= v_hi; ++v) {
            const int64_t r = v - v0;
            if (j32 < row_last[r])
              pair_alphas<L>(s, T(v) + T(0.5), u0 + start, vis_rows + r * kTile,
                             alpha_rows + r * kTile, pass_rows + r * kTile);
          }
          int32_t touched = 0;
          for (int64_t v = v_lo; v <= v_hi; ++v) {
            const int64_t r = v - v0;
            if (j32 >= row_last[r]) continue;  // every pixel of the row stopped before j
            const T py = T(v) + T(0.5);
            const T* __restrict vis = vis_rows + r * kTile;
            const T* __restrict alpha = alpha_rows + r * kTile;
            int32_t* __restrict pass = pass_rows + r * kTile;
            const int32_t* __restrict la = last + r * kTile + start;
            int32_t hits = 0;
            // A 32-bit compare: with j in 64 bits GCC compared lane by lane in scalar code.
            for (int i = 0; i < L; ++i) {
              pass[i] &= int32_t(j32 < la[i]);
              hits += pass[i];
            }
            if (hits == 0) continue;
            touched = 1;
            for (int i = 0; i < L; ++i) dot[i] = T(0);
            for (int64_t ch = 0; ch < channels; ++ch) {
              const T cc = c[ch];
              const T* __restrict go = g_out.data() + ch * kPix + r * kTile + start;
              for (int i = 0; i < L; ++i) dot[i] += go[i] * cc;
            }
            T* __restrict tr = trans + r * kTile + start;
            T* __restrict be = behind + r * kTile + start;
            const T* __restrict ta = tail + r * kTile + start;
            const T dy = s.my - py, mx = s.mx, con_a = s.a, con_b = s.b, con_c = s.c, op = s.op;
            const int32_t col0 = int32_t(u0) + start;
            for (int32_t i = 0; i < L; ++i) {
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
              const T* __restrict go = g_out.data() + ch * kPix + r * kTile + start;
              T* __restrict lc = lane_color.data() + ch * kTile;
              for (int i = 0; i < L; ++i) lc[i] += dot[i] * go[i];
            }
          }
          if (!touched) return;
          T* __restrict gr = tile_grad + j * row;
          T sums[kGColor] = {0, 0, 0, 0, 0, 0};
          for (int i = 0; i < L; ++i) {
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
            for (int i = 0; i < L; ++i) sum += lane_color[ch * kTile + i];
            gr[kGColor + ch] = sum;
          }
        };
        int start;
        if (s.narrow(u0, u1, start))
          gaussian_grad(std::integral_constant<int, kNarrow>{}, start);
        else
          gaussian_grad(std::integral_constant<int, kTile>{}, 0);
      }
    }
  }
}

// Sums the per-intersection rows into per-Gaussian rows. Each thread owns a contiguous range of
// Gaussians and scans all intersections, adding only its own: no two threads write one row, and
// the order of the additions (intersection order) is fixed, so the result is deterministic.
// (torch's index_add_ was ~10x slower here: it does not parallelise this shape on the CPU.)
template <typename T>
void sum_intersections(const T* grad_isect,  // [n_isect, row]
                       const int32_t* ids,   // [n_isect]
                       int64_t n_isect, int64_t n, int64_t row,
                       T* grad) {  // [N, row] in/out: zeroed by the caller, rows added
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

}  // namespace

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
                                              int64_t width, int64_t height) {
  for (auto& [t, name] : {std::pair{means2d, "means2d"},
                          {conics, "conics"},
                          {colors, "colors"},
                          {opacities, "opacities"},
                          {background, "background"},
                          {offsets, "tile_offsets"},
                          {ids, "tile_ids"},
                          {final_t, "final_t"},
                          {n_contrib, "n_contrib"},
                          {grad_out, "grad_colors"},
                          {grad_alpha, "grad_alphas"}})
    check_cpu_contiguous(t, name);
  const int64_t n = means2d.size(0);
  const int64_t channels = colors.size(1);
  const int64_t n_isect = ids.size(0);
  auto grad_isect = torch::empty({n_isect, kGColor + channels}, colors.options());
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "rasterize_backward", [&] {
    const auto splats =
        make_splats<scalar_t>(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                              opacities.data_ptr<scalar_t>(), n);
    backward_impl<scalar_t>(
        splats.data(), colors.data_ptr<scalar_t>(), background.data_ptr<scalar_t>(),
        offsets.data_ptr<int64_t>(), ids.data_ptr<int32_t>(), final_t.data_ptr<scalar_t>(),
        n_contrib.data_ptr<int32_t>(), grad_out.data_ptr<scalar_t>(),
        grad_alpha.data_ptr<scalar_t>(), channels, width, height, grad_isect.data_ptr<scalar_t>());
  });
  auto grad = torch::zeros({n, kGColor + channels}, colors.options());
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "sum_intersections", [&] {
    sum_intersections<scalar_t>(grad_isect.data_ptr<scalar_t>(), ids.data_ptr<int32_t>(), n_isect,
                                n, kGColor + channels, grad.data_ptr<scalar_t>());
  });
  return {grad.slice(1, kGMeanX, kGMeanY + 1), grad.slice(1, kGConicA, kGConicC + 1),
          grad.slice(1, kGColor), grad.select(1, kGOpacity)};
}

}  // namespace cgc::render
