"""Fused ops for the CPU: the same math as the textbook ops, arranged for BLAS and fewer passes."""
