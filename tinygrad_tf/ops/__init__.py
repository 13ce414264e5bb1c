"""The textbook layer: every differentiable op as the math is written, forward and backward
side by side on plain xp arrays (NumPy or CuPy). This is the spec: gradcheck checks these
ops, and every fused op in kernels/ is checked against the one it replaces."""
