"""Fused ops for NVIDIA GPUs: CuPy RawKernels, and cuBLAS/cuBLASLt called through ctypes.
Importing these modules never imports CuPy by itself; each kernel compiles on its first call."""
