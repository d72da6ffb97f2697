// EWA projection of 3D Gaussians to one camera, forward only, for renders that need no gradient
// (mask queries, evaluation, published images). It computes exactly what project.py's
// project_gaussians computes, in the same operation order, fused into one parallel pass over the
// Gaussians: the torch version runs ~50 whole-array ops and took ~18 ms of a 100k-Gaussian query
// render; this takes ~1 ms. Training keeps the torch version, whose autograd gives the gradients.
// tests/core/render/test_project.py checks the two against each other.

#include <torch/extension.h>

#include <cmath>
#include <cstdint>
#include <vector>

namespace {

constexpr double kMaxRadius = 1 << 30;  // project.MAX_RADIUS: keeps the int32 cast defined

template <typename T>
void project_impl(const T* means, const T* quats, const T* scales, const T* viewmat, const T* K,
                  int64_t n, int64_t width, int64_t height, T near, T far, T eps2d, T* means2d,
                  T* conics, T* depths, int32_t* radii) {
  const T fx = K[0], fy = K[4], cx = K[2], cy = K[5];
  const T tan_fovx = T(0.5) * T(width) / fx, tan_fovy = T(0.5) * T(height) / fy;
  const T lim_x_pos = (T(width) - cx) / fx + T(0.3) * tan_fovx, lim_x_neg = cx / fx + T(0.3) * tan_fovx;
  const T lim_y_pos = (T(height) - cy) / fy + T(0.3) * tan_fovy, lim_y_neg = cy / fy + T(0.3) * tan_fovy;
  // viewmat rows: rotation world -> camera and translation.
  const T* r0 = viewmat;
  const T* r1 = viewmat + 4;
  const T* r2 = viewmat + 8;
#pragma omp parallel for num_threads(std::max(1, at::get_num_threads())) schedule(static)
  for (int64_t g = 0; g < n; ++g) {
    const T* m = means + 3 * g;
    // t = W mean + t_cw
    const T tx = m[0] * r0[0] + m[1] * r0[1] + m[2] * r0[2] + r0[3];
    const T ty = m[0] * r1[0] + m[1] * r1[1] + m[2] * r1[2] + r1[3];
    const T tz = m[0] * r2[0] + m[1] * r2[1] + m[2] * r2[2] + r2[3];
    const bool in_range = tz >= near && tz <= far;
    const T z = in_range ? tz : T(1);
    const T x_z = std::max(std::min(tx / z, lim_x_pos), -lim_x_neg);
    const T y_z = std::max(std::min(ty / z, lim_y_pos), -lim_y_neg);
    const T inv_z = T(1) / z;
    // Rows of J W.
    T jw[2][3];
    for (int k = 0; k < 3; ++k) {
      jw[0][k] = (fx * inv_z) * (r0[k] - x_z * r2[k]);
      jw[1][k] = (fy * inv_z) * (r1[k] - y_z * r2[k]);
    }
    // Rotation of the normalised quaternion (w, x, y, z).
    const T* q = quats + 4 * g;
    const T norm = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
    const T w = q[0] / norm, x = q[1] / norm, y = q[2] / norm, zq = q[3] / norm;
    const T rot[3][3] = {
        {1 - 2 * (y * y + zq * zq), 2 * (x * y - w * zq), 2 * (x * zq + w * y)},
        {2 * (x * y + w * zq), 1 - 2 * (x * x + zq * zq), 2 * (y * zq - w * x)},
        {2 * (x * zq - w * y), 2 * (y * zq + w * x), 1 - 2 * (x * x + y * y)},
    };
    // V = J W R S: cov2d = V V^T.
    const T* s = scales + 3 * g;
    T v[2][3];
    for (int row = 0; row < 2; ++row)
      for (int col = 0; col < 3; ++col)
        v[row][col] = (jw[row][0] * rot[0][col] + jw[row][1] * rot[1][col] + jw[row][2] * rot[2][col]) * s[col];
    const T a = v[0][0] * v[0][0] + v[0][1] * v[0][1] + v[0][2] * v[0][2] + eps2d;
    const T b = v[0][0] * v[1][0] + v[0][1] * v[1][1] + v[0][2] * v[1][2];
    const T c = v[1][0] * v[1][0] + v[1][1] * v[1][1] + v[1][2] * v[1][2] + eps2d;
    const T det = a * c - b * b;
    const bool det_ok = det > 0;
    const T safe_det = det_ok ? det : T(1);
    conics[3 * g] = c / safe_det;
    conics[3 * g + 1] = -b / safe_det;
    conics[3 * g + 2] = a / safe_det;
    const T mx = fx * tx * inv_z + cx, my = fy * ty * inv_z + cy;
    means2d[2 * g] = mx;
    means2d[2 * g + 1] = my;
    depths[g] = tz;
    const T mid = T(0.5) * (a + c);
    const T lambda_max = mid + std::sqrt(std::max(mid * mid - det, T(0.01)));
    const T unclamped = std::ceil(T(3) * std::sqrt(lambda_max));
    const T radius = std::min(unclamped, T(kMaxRadius));
    const bool on_screen = (mx + radius > 0) && (mx - radius < T(width)) && (my + radius > 0) &&
                           (my - radius < T(height));
    const bool visible = in_range && det_ok && on_screen && std::isfinite(unclamped);
    radii[g] = visible ? int32_t(radius) : 0;
  }
}

}  // namespace

std::vector<torch::Tensor> project_forward(torch::Tensor means, torch::Tensor quats,
                                           torch::Tensor scales, torch::Tensor viewmat,
                                           torch::Tensor K, int64_t width, int64_t height,
                                           double near, double far, double eps2d) {
  for (const auto& t : {means, quats, scales, viewmat, K}) {
    TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(), "project_forward needs contiguous CPU tensors");
    TORCH_CHECK(t.scalar_type() == means.scalar_type(), "project_forward needs one dtype");
  }
  const int64_t n = means.size(0);
  auto means2d = torch::empty({n, 2}, means.options());
  auto conics = torch::empty({n, 3}, means.options());
  auto depths = torch::empty({n}, means.options());
  auto radii = torch::empty({n}, means.options().dtype(torch::kInt32));
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_forward", [&] {
    project_impl<scalar_t>(means.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(),
                           scales.data_ptr<scalar_t>(), viewmat.data_ptr<scalar_t>(),
                           K.data_ptr<scalar_t>(), n, width, height, scalar_t(near),
                           scalar_t(far), scalar_t(eps2d), means2d.data_ptr<scalar_t>(),
                           conics.data_ptr<scalar_t>(), depths.data_ptr<scalar_t>(),
                           radii.data_ptr<int32_t>());
  });
  return {means2d, conics, depths, radii};
}
