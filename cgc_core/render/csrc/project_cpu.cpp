// EWA projection of 3D Gaussians to one camera, with a hand-written backward: the CPU backend's
// projection. It computes exactly what project.py's project_gaussians computes, in the same
// operation order, fused into one parallel pass over the Gaussians; the torch version runs ~50
// whole-array operations and, with its autograd backward, took ~40% of a CPU training step
// (~18 ms of a 100k-Gaussian query render, ~1 ms here). project.py stays the definition and the
// reference backend's projection; tests/core/render/test_project.py checks this against it,
// outputs and gradients.
//
// Backward, by the chain rule through the forward's steps (g* = dL/d*):
//   conic = (c, -b, a) / det, det = a c - b^2  ->  ga, gb, gc
//   a = |V0|^2 + eps, b = V0.V1, c = |V1|^2 + eps, V = (J W) R diag(s)  ->  gV -> gs, g(JW), gR
//   R = rotmat(q / |q|)  ->  gq
//   J W rows = (f / z) (W_r - clamp(t_r / z) W_2), means2d = f t_r / z + c  ->  gt
//   t = W mean + t_cw  ->  gmean = W^T gt
// The camera gets no gradient (training does not refine poses).

#include <cmath>
#include <cstdint>
#include <vector>

#include "raster_cpu.h"

namespace cgc::render {
namespace {

constexpr double kMaxRadius = 1 << 30;  // project.MAX_RADIUS: keeps the int32 cast defined

// The rotation of the normalised quaternion (w, x, y, z), shared by forward and backward.
template <typename T>
inline void quat_rotation(const T* q,     // [4] (w, x, y, z)
                          T qn[4],        // out: q / |q|
                          T& norm,        // out: |q|
                          T rot[3][3]) {  // out: rotation matrix of qn
  norm = std::sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3]);
  for (int k = 0; k < 4; ++k) qn[k] = q[k] / norm;
  const T w = qn[0], x = qn[1], y = qn[2], z = qn[3];
  const T r[3][3] = {
      {1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)},
      {2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)},
      {2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)},
  };
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) rot[i][j] = r[i][j];
}

// What every Gaussian of one call shares: intrinsics, the Jacobian's clamp limits (x/z and y/z
// within 1.3x the frustum) and the rows of the world-to-camera matrix.
template <typename T>
struct ProjectionCamera {
  T fx, fy, cx, cy, lim_x_pos, lim_x_neg, lim_y_pos, lim_y_neg;
  const T* w[3];  // rows of viewmat: rotation | translation

  ProjectionCamera(const T* viewmat,  // [4, 4] world-to-camera
                   const T* K,        // [3, 3]
                   int64_t width, int64_t height)
      : fx(K[0]), fy(K[4]), cx(K[2]), cy(K[5]), w{viewmat, viewmat + 4, viewmat + 8} {
    const T tan_fovx = T(0.5) * T(width) / fx, tan_fovy = T(0.5) * T(height) / fy;
    lim_x_pos = (T(width) - cx) / fx + T(0.3) * tan_fovx;
    lim_x_neg = cx / fx + T(0.3) * tan_fovx;
    lim_y_pos = (T(height) - cy) / fy + T(0.3) * tan_fovy;
    lim_y_neg = cy / fy + T(0.3) * tan_fovy;
  }
};

// One Gaussian's forward intermediates, in project.py's operation order; the backward recomputes
// them rather than storing them.
template <typename T>
struct Footprint {
  T t[3];                    // camera-space centre
  bool in_range;             // near <= t.z <= far
  T z, xr, yr;               // safe depth (1 when culled) and the unclamped t.x / z, t.y / z
  T x_z, y_z, inv_z;         // clamped ratios of the Jacobian, 1 / z
  T jw[2][3];                // rows of J W
  T qn[4], norm, rot[3][3];  // normalised quaternion, |q|, its rotation
  T mr[2][3], v[2][3];       // M = J W R and V = M diag(s): cov2d = V V^T + eps2d I
  T a, b, c, det;            // cov2d = [[a, b], [b, c]]
};

template <typename T>
inline Footprint<T> footprint(const ProjectionCamera<T>& cam,
                              const T* m,  // [3] world-space centre
                              const T* q,  // [4] quaternion (w, x, y, z)
                              const T* s,  // [3] scales
                              T near, T far, T eps2d) {
  Footprint<T> f;
  for (int r = 0; r < 3; ++r)
    f.t[r] = m[0] * cam.w[r][0] + m[1] * cam.w[r][1] + m[2] * cam.w[r][2] + cam.w[r][3];
  f.in_range = f.t[2] >= near && f.t[2] <= far;
  f.z = f.in_range ? f.t[2] : T(1);
  f.xr = f.t[0] / f.z;
  f.yr = f.t[1] / f.z;
  f.x_z = std::max(std::min(f.xr, cam.lim_x_pos), -cam.lim_x_neg);
  f.y_z = std::max(std::min(f.yr, cam.lim_y_pos), -cam.lim_y_neg);
  f.inv_z = T(1) / f.z;
  const T k0 = cam.fx * f.inv_z, k1 = cam.fy * f.inv_z;
  for (int k = 0; k < 3; ++k) {
    f.jw[0][k] = k0 * (cam.w[0][k] - f.x_z * cam.w[2][k]);
    f.jw[1][k] = k1 * (cam.w[1][k] - f.y_z * cam.w[2][k]);
  }
  quat_rotation(q, f.qn, f.norm, f.rot);
  for (int r = 0; r < 2; ++r)
    for (int col = 0; col < 3; ++col) {
      f.mr[r][col] =
          f.jw[r][0] * f.rot[0][col] + f.jw[r][1] * f.rot[1][col] + f.jw[r][2] * f.rot[2][col];
      f.v[r][col] = f.mr[r][col] * s[col];
    }
  const auto& v = f.v;
  f.a = v[0][0] * v[0][0] + v[0][1] * v[0][1] + v[0][2] * v[0][2] + eps2d;
  f.b = v[0][0] * v[1][0] + v[0][1] * v[1][1] + v[0][2] * v[1][2];
  f.c = v[1][0] * v[1][0] + v[1][1] * v[1][1] + v[1][2] * v[1][2] + eps2d;
  f.det = f.a * f.c - f.b * f.b;
  return f;
}

template <typename T>
void project_impl(const T* means,    // [N, 3]
                  const T* quats,    // [N, 4]
                  const T* scales,   // [N, 3]
                  const T* viewmat,  // [4, 4]
                  const T* K,        // [3, 3]
                  int64_t n, int64_t width, int64_t height, T near, T far, T eps2d,
                  T* means2d,        // [N, 2] out
                  T* conics,         // [N, 3] out
                  T* depths,         // [N] out
                  int32_t* radii) {  // [N] out
  const ProjectionCamera<T> cam(viewmat, K, width, height);
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t g = 0; g < n; ++g) {
    const Footprint<T> f =
        footprint(cam, means + 3 * g, quats + 4 * g, scales + 3 * g, near, far, eps2d);
    const T a = f.a, b = f.b, c = f.c, det = f.det;
    const bool det_ok = det > 0;
    const T safe_det = det_ok ? det : T(1);
    conics[3 * g] = c / safe_det;
    conics[3 * g + 1] = -b / safe_det;
    conics[3 * g + 2] = a / safe_det;
    const T mx = cam.fx * f.t[0] * f.inv_z + cam.cx, my = cam.fy * f.t[1] * f.inv_z + cam.cy;
    means2d[2 * g] = mx;
    means2d[2 * g + 1] = my;
    depths[g] = f.t[2];
    const T mid = T(0.5) * (a + c);
    const T lambda_max = mid + std::sqrt(std::max(mid * mid - det, T(0.01)));
    const T unclamped = std::ceil(T(3) * std::sqrt(lambda_max));
    const T radius = std::min(unclamped, T(kMaxRadius));
    const bool on_screen = (mx + radius > 0) && (mx - radius < T(width)) && (my + radius > 0) &&
                           (my - radius < T(height));
    const bool visible = f.in_range && det_ok && on_screen && std::isfinite(unclamped);
    radii[g] = visible ? int32_t(radius) : 0;
  }
}

template <typename T>
void project_backward_impl(const T* means,    // [N, 3]
                           const T* quats,    // [N, 4]
                           const T* scales,   // [N, 3]
                           const T* viewmat,  // [4, 4]
                           const T* K,        // [3, 3]
                           int64_t n, int64_t width, int64_t height, T near, T far, T eps2d,
                           const T* g_means2d,  // [N, 2]
                           const T* g_conics,   // [N, 3]
                           const T* g_depths,   // [N]
                           T* g_means,          // [N, 3] out
                           T* g_quats,          // [N, 4] out
                           T* g_scales) {       // [N, 3] out
  const ProjectionCamera<T> cam(viewmat, K, width, height);
  const T fx = cam.fx, fy = cam.fy;
  const T* const* wr = cam.w;
#pragma omp parallel for num_threads(num_threads()) schedule(static)
  for (int64_t g = 0; g < n; ++g) {
    // A Gaussian the rasterizer never reached (culled, or in no tile) gets zero gradients in:
    // its gradients out are zero, so the footprint is not recomputed (about half the Gaussians
    // of a training view; the chain rule below would give the same zeros from finite values).
    const T* gm2 = g_means2d + 2 * g;
    const T* gcon = g_conics + 3 * g;
    if (gm2[0] == T(0) && gm2[1] == T(0) && gcon[0] == T(0) && gcon[1] == T(0) &&
        gcon[2] == T(0) && g_depths[g] == T(0)) {
      for (int k = 0; k < 3; ++k) g_means[3 * g + k] = g_scales[3 * g + k] = T(0);
      for (int k = 0; k < 4; ++k) g_quats[4 * g + k] = T(0);
      continue;
    }
    const Footprint<T> f =
        footprint(cam, means + 3 * g, quats + 4 * g, scales + 3 * g, near, far, eps2d);
    const T* s = scales + 3 * g;
    const T a = f.a, b = f.b, c = f.c, det = f.det, z = f.z, xr = f.xr, yr = f.yr;
    const T x_z = f.x_z, y_z = f.y_z, inv_z = f.inv_z, norm = f.norm;
    const T k0 = fx * inv_z, k1 = fy * inv_z;
    const auto &t = f.t, &jw = f.jw, &qn = f.qn, &rot = f.rot, &mr = f.mr, &v = f.v;

    // conic = (c, -b, a) / D with D = det where det > 0, else the constant 1.
    T ga, gb, gc;
    if (det > 0) {
      const T inv = T(1) / det, inv2 = inv * inv;
      // d(conic)/d(a, b, c) through both the numerators and D (dD = c da - 2 b db + a dc).
      const T g_det = -(gcon[0] * c - gcon[1] * b + gcon[2] * a) * inv2;
      ga = gcon[2] * inv + g_det * c;
      gb = -gcon[1] * inv - g_det * T(2) * b;
      gc = gcon[0] * inv + g_det * a;
    } else {
      ga = gcon[2];
      gb = -gcon[1];
      gc = gcon[0];
    }
    // a, b, c -> V -> (M, s).
    T gv[2][3];
    for (int k = 0; k < 3; ++k) {
      gv[0][k] = T(2) * ga * v[0][k] + gb * v[1][k];
      gv[1][k] = gb * v[0][k] + T(2) * gc * v[1][k];
    }
    T* gs = g_scales + 3 * g;
    T gm[2][3];
    for (int k = 0; k < 3; ++k) {
      gs[k] = gv[0][k] * mr[0][k] + gv[1][k] * mr[1][k];
      gm[0][k] = gv[0][k] * s[k];
      gm[1][k] = gv[1][k] * s[k];
    }
    // M = JW R -> g(JW) = gM R^T, gR = JW^T gM.
    T gjw[2][3], grot[3][3];
    for (int r = 0; r < 2; ++r)
      for (int k = 0; k < 3; ++k)
        gjw[r][k] = gm[r][0] * rot[k][0] + gm[r][1] * rot[k][1] + gm[r][2] * rot[k][2];
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) grot[i][j] = jw[0][i] * gm[0][j] + jw[1][i] * gm[1][j];
    // R(qn) -> g(qn): each entry of R is a quadratic in (w, x, y, z).
    const T w = qn[0], x = qn[1], y = qn[2], zq = qn[3];
    const T gw = 2 * (-zq * grot[0][1] + y * grot[0][2] + zq * grot[1][0] - x * grot[1][2] -
                      y * grot[2][0] + x * grot[2][1]);
    const T gx = 2 * (y * grot[0][1] + zq * grot[0][2] + y * grot[1][0] - 2 * x * grot[1][1] -
                      w * grot[1][2] + zq * grot[2][0] + w * grot[2][1] - 2 * x * grot[2][2]);
    const T gy = 2 * (-2 * y * grot[0][0] + x * grot[0][1] + w * grot[0][2] + x * grot[1][0] +
                      zq * grot[1][2] - w * grot[2][0] + zq * grot[2][1] - 2 * y * grot[2][2]);
    const T gz = 2 * (-2 * zq * grot[0][0] - w * grot[0][1] + x * grot[0][2] + w * grot[1][0] -
                      2 * zq * grot[1][1] + y * grot[1][2] + x * grot[2][0] + y * grot[2][1]);
    // qn = q / |q| -> gq = (g(qn) - qn (qn . g(qn))) / |q|.
    const T gqn[4] = {gw, gx, gy, gz};
    const T dot = qn[0] * gw + qn[1] * gx + qn[2] * gy + qn[3] * gz;
    T* gq = g_quats + 4 * g;
    for (int k = 0; k < 4; ++k) gq[k] = (gqn[k] - qn[k] * dot) / norm;

    // JW rows = k_r (W_r - clamp(t_r / z) W_2): -> g(k_r) and g(clamped ratio).
    T g_k0 = 0, g_k1 = 0, g_xz = 0, g_yz = 0;
    for (int k = 0; k < 3; ++k) {
      g_k0 += gjw[0][k] * (wr[0][k] - x_z * wr[2][k]);
      g_k1 += gjw[1][k] * (wr[1][k] - y_z * wr[2][k]);
      g_xz -= gjw[0][k] * k0 * wr[2][k];
      g_yz -= gjw[1][k] * k1 * wr[2][k];
    }
    // The clamp passes the gradient only inside the limits.
    if (!(xr < cam.lim_x_pos && xr > -cam.lim_x_neg)) g_xz = 0;
    if (!(yr < cam.lim_y_pos && yr > -cam.lim_y_neg)) g_yz = 0;
    // means2d = f t_r inv_z + c.
    T g_inv_z = fx * g_k0 + fy * g_k1 + gm2[0] * fx * t[0] + gm2[1] * fy * t[1];
    T gt[3] = {gm2[0] * fx * inv_z + g_xz / z, gm2[1] * fy * inv_z + g_yz / z, g_depths[g]};
    const T g_z = -g_inv_z * inv_z * inv_z - (g_xz * xr + g_yz * yr) / z;
    if (f.in_range) gt[2] += g_z;
    // t = W mean + t_cw.
    T* gmean = g_means + 3 * g;
    for (int k = 0; k < 3; ++k) gmean[k] = wr[0][k] * gt[0] + wr[1][k] * gt[1] + wr[2][k] * gt[2];
  }
}

}  // namespace

std::vector<torch::Tensor> project_backward(torch::Tensor means,    // [N, 3]
                                            torch::Tensor quats,    // [N, 4] (w, x, y, z)
                                            torch::Tensor scales,   // [N, 3]
                                            torch::Tensor viewmat,  // [4, 4] world-to-camera
                                            torch::Tensor K,        // [3, 3]
                                            int64_t width, int64_t height, double near, double far,
                                            double eps2d,
                                            torch::Tensor g_means2d,   // [N, 2]
                                            torch::Tensor g_conics,    // [N, 3]
                                            torch::Tensor g_depths) {  // [N]
  for (const auto& t : {means, quats, scales, viewmat, K, g_means2d, g_conics, g_depths}) {
    TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(),
                "project_backward needs contiguous CPU tensors");
    TORCH_CHECK(t.scalar_type() == means.scalar_type(), "project_backward needs one dtype");
  }
  const int64_t n = means.size(0);
  auto g_means = torch::empty({n, 3}, means.options());
  auto g_quats = torch::empty({n, 4}, means.options());
  auto g_scales = torch::empty({n, 3}, means.options());
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_backward", [&] {
    project_backward_impl<scalar_t>(
        means.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(), scales.data_ptr<scalar_t>(),
        viewmat.data_ptr<scalar_t>(), K.data_ptr<scalar_t>(), n, width, height, scalar_t(near),
        scalar_t(far), scalar_t(eps2d), g_means2d.data_ptr<scalar_t>(),
        g_conics.data_ptr<scalar_t>(), g_depths.data_ptr<scalar_t>(), g_means.data_ptr<scalar_t>(),
        g_quats.data_ptr<scalar_t>(), g_scales.data_ptr<scalar_t>());
  });
  return {g_means, g_quats, g_scales};
}

std::vector<torch::Tensor> project_forward(torch::Tensor means,    // [N, 3]
                                           torch::Tensor quats,    // [N, 4] (w, x, y, z)
                                           torch::Tensor scales,   // [N, 3]
                                           torch::Tensor viewmat,  // [4, 4] world-to-camera
                                           torch::Tensor K,        // [3, 3]
                                           int64_t width, int64_t height, double near, double far,
                                           double eps2d) {
  for (const auto& t : {means, quats, scales, viewmat, K}) {
    TORCH_CHECK(t.device().is_cpu() && t.is_contiguous(),
                "project_forward needs contiguous CPU tensors");
    TORCH_CHECK(t.scalar_type() == means.scalar_type(), "project_forward needs one dtype");
  }
  const int64_t n = means.size(0);
  auto means2d = torch::empty({n, 2}, means.options());
  auto conics = torch::empty({n, 3}, means.options());
  auto depths = torch::empty({n}, means.options());
  auto radii = torch::empty({n}, means.options().dtype(torch::kInt32));
  AT_DISPATCH_FLOATING_TYPES(means.scalar_type(), "project_forward", [&] {
    project_impl<scalar_t>(
        means.data_ptr<scalar_t>(), quats.data_ptr<scalar_t>(), scales.data_ptr<scalar_t>(),
        viewmat.data_ptr<scalar_t>(), K.data_ptr<scalar_t>(), n, width, height, scalar_t(near),
        scalar_t(far), scalar_t(eps2d), means2d.data_ptr<scalar_t>(), conics.data_ptr<scalar_t>(),
        depths.data_ptr<scalar_t>(), radii.data_ptr<int32_t>());
  });
  return {means2d, conics, depths, radii};
}

}  // namespace cgc::render
