// The Python module cgc_core.render._raster_cpu (see cgc_core/render/cpu.py); the functions are
// declared in raster_cpu.h.

#include "raster_cpu.h"

namespace cr = cgc::render;

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "cgc CPU Gaussian rasterizer (see cgc_core/render/cpu.py)";
  m.attr("TILE_SIZE") = cr::kTile;
  m.def("bin_gaussians", &cr::bin_gaussians, "per-tile depth-ordered Gaussian lists",
        py::arg("depths"), py::arg("rects"), py::arg("tiles_x"), py::arg("tiles_y"),
        py::arg("means2d") = py::none(), py::arg("conics") = py::none(),
        py::arg("opacities") = py::none());
  m.def("rasterize_forward", &cr::rasterize_forward, "forward rasterization");
  m.def("rasterize_backward", &cr::rasterize_backward, "backward rasterization");
  m.def("project_forward", &cr::project_forward, "EWA projection");
  m.def("project_backward", &cr::project_backward, "gradients of the EWA projection");
}
