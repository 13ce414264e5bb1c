"""Linear layers through cuBLASLt: the bias (and a ReLU) applied in the GEMM's epilogue.

A GEMM followed by `out += bias` writes the (N, out) result, then reads and writes it
again, and a ReLU after it once more; PyTorch's Linear adds the bias in cuBLASLt's
epilogue instead, as each tile of the product is stored, and so do we. On an H100 at the
seed model's shapes (N = 16384): 384->1536 with bias and ReLU 687 -> 445 us, 384->384
with bias 184 -> 154 us. (The weight gradient's bias-gradient epilogue, BGRADB, was
measured too: 3-55% slower than a plain GEMM plus kernels/reduce.py's column sum, so the
backward keeps those.)
CuPy binds no cuBLASLt, so the few calls needed are bound here through ctypes, from
the library that CuPy's cuBLAS has loaded already. Each shape's descriptors and chosen
algorithm are made once and kept; a call then sets the bias pointer and runs.

Shapes are cuBLAS's column-major view of our row-major arrays: a row-major (r, c)
matrix is a column-major (c, r) one, so x @ W.T is D = op(W) op(x) with W transposed.
forward() returns None when cuBLASLt cannot take the case (no library, no algorithm,
unaligned operands), and the caller then takes the plain path.
"""
import ctypes

import numpy as np

from ..backend import cupy
from ._cuda import tf32

_OP_N, _OP_T = 0, 1
_TYPES = {np.dtype("float32"): (0, 68, 77), np.dtype("float64"): (1, 70, 70)}  # data, compute, TF32 compute
_DESC_TRANSA, _DESC_TRANSB, _DESC_EPILOGUE, _DESC_BIAS_POINTER = 3, 4, 7, 8
_EPILOGUE_DEFAULT, _EPILOGUE_RELU, _EPILOGUE_BIAS = 1, 2, 4  # RELU | BIAS: both
_PREF_MAX_WORKSPACE_BYTES = 1
_ALIGNMENT = 256  # the heuristics assume operands aligned this much (cuBLASLt's default preference)
_WORKSPACE_BYTES = 8 << 20
_ONE = {dt: np.ones((), dt) for dt in _TYPES}
_ZERO = {dt: np.zeros((), dt) for dt in _TYPES}
_ALPHA_BETA = {dt: (_ONE[dt].ctypes.data, _ZERO[dt].ctypes.data) for dt in _TYPES}


class _HeuristicResult(ctypes.Structure):
    _fields_ = [("algo", ctypes.c_uint64 * 8), ("workspace_size", ctypes.c_size_t), ("state", ctypes.c_int),
                ("waves_count", ctypes.c_float), ("reserved", ctypes.c_int * 4)]


_lib = None  # the loaded library, or False when there is none
_devices = {}  # device id -> (handle, workspace array)
_plans = {}  # (device, dtype, tf32, shapes, epilogue) -> _Plan, or None when cuBLASLt has no algorithm


def _library():
    global _lib
    if _lib is None:
        _lib = False
        for name in ("libcublasLt.so.13", "libcublasLt.so.12", "libcublasLt.so"):
            try:
                lib = ctypes.CDLL(name)
            except OSError:
                continue
            p, i, u64, i64, sz = ctypes.c_void_p, ctypes.c_int, ctypes.c_uint64, ctypes.c_int64, ctypes.c_size_t
            for fn, args in (("cublasLtCreate", [p]), ("cublasLtMatmulDescCreate", [p, i, i]),
                             ("cublasLtMatmulDescSetAttribute", [p, i, p, sz]),
                             ("cublasLtMatrixLayoutCreate", [p, i, u64, u64, i64]),
                             ("cublasLtMatmulPreferenceCreate", [p]),
                             ("cublasLtMatmulPreferenceSetAttribute", [p, i, p, sz]),
                             ("cublasLtMatmulAlgoGetHeuristic", [p, p, p, p, p, p, p, i, p, p]),
                             ("cublasLtMatmul", [p] * 14 + [sz, p])):
                getattr(lib, fn).argtypes, getattr(lib, fn).restype = args, ctypes.c_int
            _lib = lib
            break
    return _lib


def _check(status, what):
    if status:
        raise RuntimeError(f"cuBLASLt {what} failed with status {status}")


def _device(device_id):
    if device_id not in _devices:
        handle = ctypes.c_void_p()
        _check(_library().cublasLtCreate(ctypes.byref(handle)), "cublasLtCreate")
        _devices[device_id] = (handle, cupy.empty(_WORKSPACE_BYTES, np.uint8))
    return _devices[device_id]


class _Plan:
    """out (rows, n_out) = x2 (rows, k) @ W.T with one epilogue: column-major, D (n_out, rows) = W^T x2^T."""

    def __init__(self, device_id, dtype, use_tf32, rows, n_out, k, epilogue):
        lib, (handle, workspace) = _library(), _device(device_id)
        data_type, compute, fast = _TYPES[dtype]
        self.desc = ctypes.c_void_p()
        _check(lib.cublasLtMatmulDescCreate(ctypes.byref(self.desc), fast if use_tf32 else compute, data_type),
               "MatmulDescCreate")
        for attr, value in ((_DESC_TRANSA, ctypes.c_int32(_OP_T)), (_DESC_TRANSB, ctypes.c_int32(_OP_N)),
                            (_DESC_EPILOGUE, ctypes.c_uint32(epilogue))):
            _check(lib.cublasLtMatmulDescSetAttribute(self.desc, attr, ctypes.byref(value), 4), "DescSetAttribute")
        self.layouts = []
        for shape in ((k, n_out, k), (k, rows, k), (n_out, rows, n_out)):  # W, x2, out: (rows, cols, ld)
            layout = ctypes.c_void_p()
            _check(lib.cublasLtMatrixLayoutCreate(ctypes.byref(layout), data_type, *shape), "LayoutCreate")
            self.layouts.append(layout)
        preference = ctypes.c_void_p()
        _check(lib.cublasLtMatmulPreferenceCreate(ctypes.byref(preference)), "PreferenceCreate")
        size = ctypes.c_uint64(workspace.nbytes)
        _check(lib.cublasLtMatmulPreferenceSetAttribute(preference, _PREF_MAX_WORKSPACE_BYTES, ctypes.byref(size), 8),
               "PreferenceSetAttribute")
        self.result, found = _HeuristicResult(), ctypes.c_int(0)
        status = lib.cublasLtMatmulAlgoGetHeuristic(handle, self.desc, *self.layouts, self.layouts[2], preference, 1,
                                                    ctypes.byref(self.result), ctypes.byref(found))
        self.ok = status == 0 and found.value > 0
        self.handle, self.workspace, self.bias = handle, workspace, ctypes.c_uint64(0)
        self.alpha, self.beta = _ALPHA_BETA[dtype]

    def run(self, weight, x2, out, bias):
        lib = _lib
        if bias is not None:
            self.bias.value = bias.data.ptr
            _check(lib.cublasLtMatmulDescSetAttribute(self.desc, _DESC_BIAS_POINTER, ctypes.byref(self.bias), 8),
                   "DescSetAttribute")
        layout_w, layout_x, layout_out = self.layouts
        _check(lib.cublasLtMatmul(self.handle, self.desc, self.alpha, weight.data.ptr, layout_w, x2.data.ptr, layout_x,
                                  self.beta, out.data.ptr, layout_out, out.data.ptr, layout_out,
                                  ctypes.byref(self.result.algo),
                                  self.workspace.data.ptr, self.workspace.nbytes,
                                  cupy.cuda.get_current_stream().ptr), "Matmul")


def _plan(arrays, *shape):
    """The kept plan for this GEMM, or None when cuBLASLt cannot run it on these arrays."""
    first = arrays[0]
    if first.dtype not in _TYPES or not _library():
        return None
    for x in arrays:
        if x.dtype != first.dtype or not x.flags.c_contiguous or x.data.ptr % _ALIGNMENT or x.size == 0:
            return None
    key = (first.device.id, first.dtype, tf32()) + shape
    if key not in _plans:
        plan = _Plan(key[0], *key[1:])
        _plans[key] = plan if plan.ok else None
    return _plans[key]


def forward(x2, weight, bias, relu=False):
    """x2 @ weight.T (+ bias) (then ReLU when asked), or None when cuBLASLt can't take it."""
    (rows, k), n_out = x2.shape, weight.shape[0]
    epilogue = (_EPILOGUE_RELU if relu else 0) | (_EPILOGUE_BIAS if bias is not None else 0) or _EPILOGUE_DEFAULT
    plan = _plan((x2, weight) if bias is None else (x2, weight, bias), rows, n_out, k, epilogue)
    if plan is None:
        return None
    out = cupy.empty((rows, n_out), x2.dtype)
    plan.run(weight, x2, out, bias)
    return out
