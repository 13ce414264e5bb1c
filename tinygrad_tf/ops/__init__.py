"""The textbook layer: every differentiable op as the math is written, forward and backward
side by side on plain xp arrays (NumPy or CuPy). This is the spec: gradcheck checks these
ops, and every fused twin of an op (the fast layer) is checked against it."""
