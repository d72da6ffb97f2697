// Forward rasterization: front-to-back alpha blending of each tile's Gaussians (see raster_cpu.h).

#include <type_traits>

#include "raster_cpu.h"

namespace cgc::render {
namespace {

template <typename T>
void forward_impl(const Splat<T>* splats,  // [N]
                  const T* colors,         // [N, C]
                  const T* bg,             // [C]
                  const int64_t* offsets,  // [T + 1]
                  const int32_t* ids,      // [n_isect]
                  int64_t channels, int64_t width, int64_t height,
                  T* out,                // [H, W, C] out
                  T* final_t,            // [H, W] out: final transmittance
                  int32_t* n_contrib) {  // [H, W] out: last contributor's tile-list index + 1
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
    alignas(64) T vis_rows[kPix], alpha_rows[kPix], weight[kTile];
    alignas(64) int32_t pass_rows[kPix];
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
        // The Gaussian's rows, on L lanes from lane `start` (all 16, or a narrow window).
        const auto splat_rows = [&](auto lanes, int start) {
          constexpr int L = decltype(lanes)::value;
          // Every live row's alphas first, then the blending: rows are independent (a row's
          // liveness only changes by blending that row), and computing them in one loop lets
          // the CPU overlap their exp polynomials.
          for (int64_t v = v_lo; v <= v_hi; ++v) {
            const int64_t r = v - v0;
            if (row_live[r] != 0)
              pair_alphas<L>(s, T(v) + T(0.5), u0 + start, vis_rows + r * kTile,
                             alpha_rows + r * kTile, pass_rows + r * kTile);
          }
          for (int64_t v = v_lo; v <= v_hi; ++v) {
            const int64_t r = v - v0;
            if (row_live[r] == 0) continue;  // every pixel of the row has stopped
            const T* __restrict alpha = alpha_rows + r * kTile;
            const int32_t* __restrict pass = pass_rows + r * kTile;
            T* __restrict tr = trans + r * kTile + start;
            int32_t* __restrict la = last + r * kTile + start;
            int32_t* __restrict li = live + r * kTile + start;
            int32_t finished = 0, added = 0;
            for (int i = 0; i < L; ++i) {
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
              T* __restrict a = acc.data() + ch * kPix + r * kTile + start;
              // Selected, not multiplied by a zero weight: a non-finite colour must not leak
              // into pixels the Gaussian does not touch. `omp simd`: without it GCC unrolled
              // the lanes and vectorised across channels instead (strided, permutes, a scalar
              // tail), which made this loop ~90% of the forward with 19 channels.
#pragma omp simd
              for (int i = 0; i < L; ++i) a[i] = weight[i] != T(0) ? a[i] + weight[i] * cc : a[i];
            }
          }
        };
        int start;
        if (s.narrow(u0, u1, start))
          splat_rows(std::integral_constant<int, kNarrow>{}, start);
        else
          splat_rows(std::integral_constant<int, kTile>{}, 0);
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

}  // namespace

std::vector<torch::Tensor> rasterize_forward(torch::Tensor means2d,     // [N, 2]
                                             torch::Tensor conics,      // [N, 3]
                                             torch::Tensor colors,      // [N, C]
                                             torch::Tensor opacities,   // [N]
                                             torch::Tensor background,  // [C]
                                             torch::Tensor offsets,     // [T + 1] int64
                                             torch::Tensor ids,         // [n_isect] int32
                                             int64_t width, int64_t height) {
  for (auto& [t, name] : {std::pair{means2d, "means2d"},
                          {conics, "conics"},
                          {colors, "colors"},
                          {opacities, "opacities"},
                          {background, "background"},
                          {offsets, "tile_offsets"},
                          {ids, "tile_ids"}})
    check_cpu_contiguous(t, name);
  const int64_t channels = colors.size(1);
  auto out = torch::empty({height, width, channels}, colors.options());
  auto final_t = torch::empty({height, width}, colors.options());
  auto n_contrib = torch::empty({height, width}, colors.options().dtype(torch::kInt32));
  AT_DISPATCH_FLOATING_TYPES(colors.scalar_type(), "rasterize_forward", [&] {
    const auto splats =
        make_splats<scalar_t>(means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
                              opacities.data_ptr<scalar_t>(), means2d.size(0));
    forward_impl<scalar_t>(
        splats.data(), colors.data_ptr<scalar_t>(), background.data_ptr<scalar_t>(),
        offsets.data_ptr<int64_t>(), ids.data_ptr<int32_t>(), channels, width, height,
        out.data_ptr<scalar_t>(), final_t.data_ptr<scalar_t>(), n_contrib.data_ptr<int32_t>());
  });
  return {out, final_t, n_contrib};
}

}  // namespace cgc::render
