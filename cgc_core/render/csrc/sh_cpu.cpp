// Spherical-harmonics colour (degrees 1-3, the 3DGS basis of cgc_core/model/sh.py) in one
// parallel pass per Gaussian, forward and hand-written backward.
//
// Why: in torch the degree-3 colour is ~90 small whole-array operations (the basis, the
// normalisation, the product with the coefficients) and their autograd backwards; at 65k
// Gaussians it was a quarter of a CPU training step (bench/results/profile_iteration.md). Here
// each Gaussian is one short loop body whose basis stays in registers.
//
// It also skips the Gaussians the projection culled (visible = 0): the rasterizer never reads
// their colour, so it is left at 0, and their gradients are exactly the 0 that torch's version
// would compute from a zero colour gradient.
//
// Forward, for a Gaussian with coefficients sh0 [3], shN [K - 1, 3] and direction v:
//   u = v / max(|v|, 1e-12)  (torch.nn.functional.normalize)
//   rgb = max(C0 sh0 + sum_{k=1}^{B-1} basis_k(u) shN[k - 1] + 0.5, 0), B = (degree + 1)^2
// Backward (g = dL/drgb, zeroed where the clamp is active, i.e. where the sum + 0.5 < 0):
//   dL/dsh0 = C0 g, dL/dshN[k - 1] = basis_k(u) g (0 beyond the active degree),
//   dL/du = sum_k (shN[k - 1] . g) dbasis_k/du, dL/dv = (dL/du - u (u . dL/du)) / |v|
//   (dL/du / 1e-12 where |v| < 1e-12, as the clamped norm carries no gradient).
// cgc_core/model/sh.py's torch version stays the definition; tests/core/model/test_sh.py holds
// this to it (values and gradients). Sums run in a fixed order but not torch's (its batched
// product picks its own), so the two agree to float rounding, not bit for bit.

#include <cmath>
#include <cstdint>

#include "raster_cpu.h"

namespace cgc::render {
namespace {

// The constants of sh.py, in double: each is rounded to T once, as torch rounds a Python float
// multiplied into a float32 tensor.
constexpr double kC0 = 0.28209479177387814;
constexpr double kC1 = 0.4886025119029199;
constexpr double kC2[5] = {1.0925484305920792, -1.0925484305920792, 0.31539156525252005,
                           -1.0925484305920792, 0.5462742152960396};
constexpr double kC3[7] = {-0.5900435899266435, 2.890611442640554, -0.4570457994644658,
                           0.3731763325901154, -0.4570457994644658, 1.445305721320277,
                           -0.5900435899266435};
constexpr double kNormEps = 1e-12;  // torch.nn.functional.normalize's default eps

constexpr int kMaxBases = 16;  // degree 3

// The basis functions 1..bases-1 at unit direction (x, y, z), in sh.py's order and arithmetic.
template <typename T>
inline void sh_basis(int degree, T x, T y, T z, T* basis) {  // [kMaxBases] out (0 unused)
  basis[1] = -T(kC1) * y;
  basis[2] = T(kC1) * z;
  basis[3] = -T(kC1) * x;
  if (degree < 2) return;
  const T xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
  basis[4] = T(kC2[0]) * xy;
  basis[5] = T(kC2[1]) * yz;
  basis[6] = T(kC2[2]) * (T(2) * zz - xx - yy);
  basis[7] = T(kC2[3]) * xz;
  basis[8] = T(kC2[4]) * (xx - yy);
  if (degree < 3) return;
  basis[9] = T(kC3[0]) * y * (T(3) * xx - yy);
  basis[10] = T(kC3[1]) * xy * z;
  basis[11] = T(kC3[2]) * y * (T(4) * zz - xx - yy);
  basis[12] = T(kC3[3]) * z * (T(2) * zz - T(3) * xx - T(3) * yy);
  basis[13] = T(kC3[4]) * x * (T(4) * zz - xx - yy);
  basis[14] = T(kC3[5]) * z * (xx - yy);
  basis[15] = T(kC3[6]) * x * (xx - T(3) * yy);
}

// g_u += sum_k g_basis[k] dbasis_k/du for the basis above.
template <typename T>
inline void sh_basis_backward(int degree, T x, T y, T z,
                              const T* g,  // [kMaxBases] dL/dbasis_k (0 unused)
                              T& gx, T& gy, T& gz) {
  gx = -T(kC1) * g[3];
  gy = -T(kC1) * g[1];
  gz = T(kC1) * g[2];
  if (degree < 2) return;
  const T xx = x * x, yy = y * y, zz = z * z, xy = x * y, yz = y * z, xz = x * z;
  gx += T(kC2[0]) * y * g[4] - T(2 * kC2[2]) * x * g[6] + T(kC2[3]) * z * g[7] +
        T(2 * kC2[4]) * x * g[8];
  gy += T(kC2[0]) * x * g[4] + T(kC2[1]) * z * g[5] - T(2 * kC2[2]) * y * g[6] -
        T(2 * kC2[4]) * y * g[8];
  gz += T(kC2[1]) * y * g[5] + T(4 * kC2[2]) * z * g[6] + T(kC2[3]) * x * g[7];
  if (degree < 3) return;
  gx += T(kC3[0]) * T(6) * xy * g[9] + T(kC3[1]) * yz * g[10] - T(kC3[2]) * T(2) * xy * g[11] -
        T(kC3[3]) * T(6) * xz * g[12] + T(kC3[4]) * (T(4) * zz - T(3) * xx - yy) * g[13] +
        T(kC3[5]) * T(2) * xz * g[14] + T(kC3[6]) * T(3) * (xx - yy) * g[15];
  gy += T(kC3[0]) * T(3) * (xx - yy) * g[9] + T(kC3[1]) * xz * g[10] +
        T(kC3[2]) * (T(4) * zz - xx - T(3) * yy) * g[11] - T(kC3[3]) * T(6) * yz * g[12] -
        T(kC3[4]) * T(2) * xy * g[13] - T(kC3[5]) * T(2) * yz * g[14] -
        T(kC3[6]) * T(6) * xy * g[15];
  gz += T(kC3[1]) * xy * g[10] + T(kC3[2]) * T(8) * yz * g[11] +
        T(kC3[3]) * (T(6) * zz - T(3) * xx - T(3) * yy) * g[12] + T(kC3[4]) * T(8) * xz * g[13] +
        T(kC3[5]) * (xx - yy) * g[14];
}

// The unit direction of v, as torch.nn.functional.normalize computes it; norm = max(|v|, eps).
template <typename T>
inline void unit_direction(const T* v, T& x, T& y, T& z, T& norm) {  // v: [3]
  norm = std::max(std::sqrt(v[0] * v[0] + v[1] * v[1] + v[2] * v[2]), T(kNormEps));
  x = v[0] / norm;
  y = v[1] / norm;
  z = v[2] / norm;
}

// The colour before the clamp: C0 sh0 + sum_k basis_k shN[k - 1] + 0.5, channel by channel.
template <typename T>
inline void sh_sum(int bases, const T* basis, const T* sh0, const T* shN, T* out) {  // out: [3]
  for (int ch = 0; ch < 3; ++ch) {
    T sum = T(0);
    for (int k = 1; k < bases; ++k) sum += basis[k] * shN[(k - 1) * 3 + ch];
    out[ch] = T(kC0) * sh0[ch] + sum + T(0.5);
  }
}

template <typename T>
void sh_forward_impl(int degree, int64_t n, int64_t coeffs,  // coeffs = K - 1 rows of shN
                     const T* sh0,                           // [N, 1, 3]
                     const T* shN,                           // [N, K - 1, 3]
                     const T* dirs,                          // [N, 3]
                     const int32_t* visible,                 // [N] or null (all visible)
                     T* rgb) {                               // [N, 3] out
  const int bases = (degree + 1) * (degree + 1);
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t g = 0; g < n; ++g) {
    T* out = rgb + 3 * g;
    if (visible != nullptr && visible[g] == 0) {
      out[0] = out[1] = out[2] = T(0);
      continue;
    }
    T x, y, z, norm, basis[kMaxBases];
    unit_direction(dirs + 3 * g, x, y, z, norm);
    sh_basis(degree, x, y, z, basis);
    sh_sum(bases, basis, sh0 + 3 * g, shN + coeffs * 3 * g, out);
    for (int ch = 0; ch < 3; ++ch) out[ch] = std::max(out[ch], T(0));
  }
}

template <typename T>
void sh_backward_impl(int degree, int64_t n, int64_t coeffs, const T* sh0, const T* shN,
                      const T* dirs, const int32_t* visible,
                      const T* grad_rgb,  // [N, 3]
                      T* g_sh0,           // [N, 1, 3] out (every entry written)
                      T* g_shN,           // [N, K - 1, 3] out, zeroed by the caller
                      T* g_dirs) {        // [N, 3] out (every entry written)
  const int bases = (degree + 1) * (degree + 1);
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t g = 0; g < n; ++g) {
    T* gs0 = g_sh0 + 3 * g;
    T* gv = g_dirs + 3 * g;
    if (visible != nullptr && visible[g] == 0) {
      gs0[0] = gs0[1] = gs0[2] = gv[0] = gv[1] = gv[2] = T(0);
      continue;
    }
    const T* v = dirs + 3 * g;
    const T* coef = shN + coeffs * 3 * g;
    T x, y, z, norm, basis[kMaxBases], rgb[3];
    unit_direction(v, x, y, z, norm);
    sh_basis(degree, x, y, z, basis);
    sh_sum(bases, basis, sh0 + 3 * g, coef, rgb);
    // clamp_min's gradient passes where the input is >= the bound.
    T gc[3];
    for (int ch = 0; ch < 3; ++ch) gc[ch] = rgb[ch] >= T(0) ? grad_rgb[3 * g + ch] : T(0);
    for (int ch = 0; ch < 3; ++ch) gs0[ch] = T(kC0) * gc[ch];
    T* gcoef = g_shN + coeffs * 3 * g;
    T g_basis[kMaxBases];
    for (int k = 1; k < bases; ++k) {
      const T* c = coef + (k - 1) * 3;
      T* gk = gcoef + (k - 1) * 3;
      for (int ch = 0; ch < 3; ++ch) gk[ch] = basis[k] * gc[ch];
      g_basis[k] = c[0] * gc[0] + c[1] * gc[1] + c[2] * gc[2];
    }
    T gx, gy, gz;
    sh_basis_backward(degree, x, y, z, g_basis, gx, gy, gz);
    if (norm > T(kNormEps)) {
      const T along = x * gx + y * gy + z * gz;
      gv[0] = (gx - x * along) / norm;
      gv[1] = (gy - y * along) / norm;
      gv[2] = (gz - z * along) / norm;
    } else {
      gv[0] = gx / norm;
      gv[1] = gy / norm;
      gv[2] = gz / norm;
    }
  }
}

void check_sh_inputs(int64_t degree, const torch::Tensor& sh0, const torch::Tensor& shN,
                     const torch::Tensor& dirs, const std::optional<torch::Tensor>& visible) {
  TORCH_CHECK(degree >= 1 && degree <= 3, "sh degree must be 1..3, got ", degree);
  for (auto& [t, name] : {std::pair{sh0, "sh0"}, {shN, "shN"}, {dirs, "dirs"}})
    check_cpu_contiguous(t, name);
  const int64_t n = dirs.size(0);
  TORCH_CHECK(sh0.dim() == 3 && sh0.size(0) == n && sh0.size(1) == 1 && sh0.size(2) == 3,
              "sh0 must be [N, 1, 3]");
  TORCH_CHECK(shN.dim() == 3 && shN.size(0) == n && shN.size(2) == 3 &&
                  shN.size(1) >= (degree + 1) * (degree + 1) - 1,
              "shN must be [N, K - 1, 3] with K >= (degree + 1)^2");
  TORCH_CHECK(dirs.dim() == 2 && dirs.size(1) == 3, "dirs must be [N, 3]");
  TORCH_CHECK(sh0.scalar_type() == dirs.scalar_type() && shN.scalar_type() == dirs.scalar_type(),
              "sh0, shN and dirs must share one dtype");
  if (visible) {
    check_cpu_contiguous(*visible, "visible");
    TORCH_CHECK(visible->scalar_type() == torch::kInt32 && visible->numel() == n,
                "visible must be [N] int32");
  }
}

const int32_t* visible_ptr(const std::optional<torch::Tensor>& visible) {
  return visible ? visible->data_ptr<int32_t>() : nullptr;
}

}  // namespace

torch::Tensor sh_forward(int64_t degree, torch::Tensor sh0, torch::Tensor shN, torch::Tensor dirs,
                         std::optional<torch::Tensor> visible) {
  check_sh_inputs(degree, sh0, shN, dirs, visible);
  const int64_t n = dirs.size(0);
  auto rgb = torch::empty({n, 3}, dirs.options());
  AT_DISPATCH_FLOATING_TYPES(dirs.scalar_type(), "sh_forward", [&] {
    sh_forward_impl<scalar_t>(int(degree), n, shN.size(1), sh0.data_ptr<scalar_t>(),
                              shN.data_ptr<scalar_t>(), dirs.data_ptr<scalar_t>(),
                              visible_ptr(visible), rgb.data_ptr<scalar_t>());
  });
  return rgb;
}

std::vector<torch::Tensor> sh_backward(int64_t degree, torch::Tensor sh0, torch::Tensor shN,
                                       torch::Tensor dirs, std::optional<torch::Tensor> visible,
                                       torch::Tensor grad_rgb) {
  check_sh_inputs(degree, sh0, shN, dirs, visible);
  check_cpu_contiguous(grad_rgb, "grad_rgb");
  const int64_t n = dirs.size(0);
  TORCH_CHECK(grad_rgb.sizes() == torch::IntArrayRef({n, 3}), "grad_rgb must be [N, 3]");
  auto g_sh0 = torch::empty_like(sh0);
  auto g_shN = torch::zeros_like(shN);  // coefficients beyond the active degree get 0
  auto g_dirs = torch::empty_like(dirs);
  AT_DISPATCH_FLOATING_TYPES(dirs.scalar_type(), "sh_backward", [&] {
    sh_backward_impl<scalar_t>(int(degree), n, shN.size(1), sh0.data_ptr<scalar_t>(),
                               shN.data_ptr<scalar_t>(), dirs.data_ptr<scalar_t>(),
                               visible_ptr(visible), grad_rgb.data_ptr<scalar_t>(),
                               g_sh0.data_ptr<scalar_t>(), g_shN.data_ptr<scalar_t>(),
                               g_dirs.data_ptr<scalar_t>());
  });
  return {g_sh0, g_shN, g_dirs};
}

}  // namespace cgc::render
