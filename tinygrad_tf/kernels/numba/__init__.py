"""Fused ops for the CPU compiled by Numba (the optional `cpu` extra): each is a loop over rows
or elements that does in one pass, on the rows while they sit in cache, what the NumPy
twins of kernels/cpu/ do in several passes over whole arrays.

They have the names of the ops they replace (their switches) and the "numba" switch over
all of them: `tg.kernels.select("-numba")` (or TINYGRAD_TF_KERNELS=-numba) runs the NumPy
path, which is also what runs when numba is not installed. dispatch.py tries them before
their kernels/cpu twins. _numba.py is the one module that imports numba."""
