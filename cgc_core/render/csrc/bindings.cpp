// The Python module cgc_core.render._raster_cpu (see cgc_core/render/cpu.py); the functions are
// declared in raster_cpu.h.
//
// Every function releases the GIL while it computes (its arguments are converted before, its
// result after): the live session trains in one thread while the ROS node's worker renders
// segmentation and answers queries in another, and a rasterization holding the GIL would stall
// that thread for the whole of it. The functions touch no Python object.

#include "raster_cpu.h"

namespace cr = cgc::render;
using release_gil = py::call_guard<py::gil_scoped_release>;

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "cgc CPU Gaussian rasterizer (see cgc_core/render/cpu.py)";
  m.attr("TILE_SIZE") = cr::kTile;
  m.def("bin_gaussians", &cr::bin_gaussians, "per-tile depth-ordered Gaussian lists",
        py::arg("depths"), py::arg("rects"), py::arg("tiles_x"), py::arg("tiles_y"),
        py::arg("means2d") = py::none(), py::arg("conics") = py::none(),
        py::arg("opacities") = py::none(), release_gil());
  m.def("rasterize_forward", &cr::rasterize_forward, "forward rasterization",
        release_gil());
  m.def("rasterize_backward", &cr::rasterize_backward, "backward rasterization",
        release_gil());
  m.def("project_forward", &cr::project_forward, "EWA projection",
        release_gil());
  m.def("project_backward", &cr::project_backward, "gradients of the EWA projection",
        release_gil());
  m.def("sh_forward", &cr::sh_forward, "SH colour of degree 1..3", py::arg("degree"),
        py::arg("sh0"), py::arg("shN"), py::arg("dirs"), py::arg("visible") = py::none(),
        release_gil());
  m.def("sh_backward", &cr::sh_backward, "gradients of the SH colour", py::arg("degree"),
        py::arg("sh0"), py::arg("shN"), py::arg("dirs"), py::arg("visible"),
        py::arg("grad_rgb"), release_gil());
}
