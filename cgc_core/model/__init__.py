"""The Gaussian model: parameters, SH colour, PLY files, and rendering it from a camera."""
