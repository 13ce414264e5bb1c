"""2-D GEMMs through cuBLASLt, for Linear layers (linear.py): the bias (and a ReLU) applied in the epilogue.

A GEMM followed by `out += bias` writes the (N, out) result, then reads and writes it
again, and a ReLU after it once more; PyTorch's Linear adds the bias in cuBLASLt's
epilogue instead, as each tile of the product is stored, and so do we. On an H100 at the
seed model's shapes (N = 16384): 384->1536 with bias and ReLU 687 -> 445 us, 384->384
with bias 184 -> 154 us. (The weight gradient's bias-gradient epilogue, BGRADB, was
measured too: 3-55% slower than a plain GEMM plus reduce.py's column sum, so the
backward keeps those.) The input gradient's GEMM comes here too, for the host's sake: a
call costs about half of cupy.matmul's Python and Cython time, and the step is
host-bound with TF32.
CuPy binds no cuBLASLt, so the few calls needed are bound here through ctypes, from
the library that CuPy's cuBLAS has loaded already. Each shape's descriptors and
algorithm are chosen once and kept (the algorithm by timing cuBLASLt's candidates on the
first call's operands, as torch.backends.cudnn.benchmark does: two processes may pick
differently and so differ in the last bits); a call then sets the bias pointer and runs.

cuBLAS is column-major: a row-major (r, c) array is a column-major (c, r) matrix with
leading dimension c, so the row-major C = op(A) op(B) is the column-major
C^T = op(B)^T op(A)^T, i.e. B is passed first. matmul() returns None when cuBLASLt
cannot take the case (no library, no algorithm, unaligned operands), and the caller
then takes the plain path.
"""
import ctypes

import numpy as np

from ...backend import bfloat16_or_none, cupy, float16
from ._cuda import ALPHA_BETA, tf32

_OP_N, _OP_T = 0, 1
# data type, compute type, TF32 compute type, scale type (alpha, beta): 16-bit data accumulates in float32
_TYPES = {np.dtype("float32"): (0, 68, 77, 0), np.dtype("float64"): (1, 70, 70, 1), float16: (2, 68, 68, 0),
          **({} if bfloat16_or_none() is None else {bfloat16_or_none(): (14, 68, 68, 0)})}
_DESC_TRANSA, _DESC_TRANSB, _DESC_EPILOGUE, _DESC_BIAS_POINTER = 3, 4, 7, 8
_EPILOGUE_DEFAULT, _EPILOGUE_RELU, _EPILOGUE_BIAS = 1, 2, 4  # RELU | BIAS: both
_PREF_MAX_WORKSPACE_BYTES = 1
_ALIGNMENT = 256  # the heuristics assume operands aligned this much (cuBLASLt's default preference)
_WORKSPACE_BYTES = 8 << 20
_CANDIDATES, _TUNING_RUNS = 32, 3  # algorithms timed per shape, once per process


class _HeuristicResult(ctypes.Structure):
    _fields_ = [("algo", ctypes.c_uint64 * 8), ("workspace_size", ctypes.c_size_t), ("state", ctypes.c_int),
                ("waves_count", ctypes.c_float), ("reserved", ctypes.c_int * 4)]


_lib = None  # the loaded library, or False when there is none
_devices = {}  # device id -> (handle, workspace array)
_plans = {}  # (device, dtype, tf32, shapes, transposes, epilogue) -> _Plan, or None when it has no algorithm


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
    """op(A) @ op(B) for row-major A, B of the given shapes, with one epilogue."""

    def __init__(self, device_id, dtype, use_tf32, a_shape, b_shape, trans_a, trans_b, epilogue):
        lib, (handle, workspace) = _library(), _device(device_id)
        data_type, compute, fast, scale_type = _TYPES[dtype]
        self.desc = ctypes.c_void_p()
        _check(lib.cublasLtMatmulDescCreate(ctypes.byref(self.desc), fast if use_tf32 else compute, scale_type),
               "MatmulDescCreate")
        for attr, value in ((_DESC_TRANSA, ctypes.c_int32(_OP_T if trans_b else _OP_N)),
                            (_DESC_TRANSB, ctypes.c_int32(_OP_T if trans_a else _OP_N)),
                            (_DESC_EPILOGUE, ctypes.c_uint32(epilogue))):
            _check(lib.cublasLtMatmulDescSetAttribute(self.desc, attr, ctypes.byref(value), 4), "DescSetAttribute")
        self.out_shape = (a_shape[1] if trans_a else a_shape[0], b_shape[0] if trans_b else b_shape[1])
        self.layouts = []
        for rows, cols in (b_shape, a_shape, self.out_shape):  # column-major: (cols, rows), leading dim cols
            layout = ctypes.c_void_p()
            _check(lib.cublasLtMatrixLayoutCreate(ctypes.byref(layout), data_type, cols, rows, cols), "LayoutCreate")
            self.layouts.append(layout)
        preference = ctypes.c_void_p()
        _check(lib.cublasLtMatmulPreferenceCreate(ctypes.byref(preference)), "PreferenceCreate")
        size = ctypes.c_uint64(workspace.nbytes)
        _check(lib.cublasLtMatmulPreferenceSetAttribute(preference, _PREF_MAX_WORKSPACE_BYTES, ctypes.byref(size), 8),
               "PreferenceSetAttribute")
        self.candidates, found = (_HeuristicResult * _CANDIDATES)(), ctypes.c_int(0)
        status = lib.cublasLtMatmulAlgoGetHeuristic(handle, self.desc, *self.layouts, self.layouts[2], preference,
                                                    _CANDIDATES, self.candidates, ctypes.byref(found))
        self.found = found.value if status == 0 else 0
        self.algo = ctypes.byref(self.candidates[0].algo)
        self.handle, self.workspace, self.bias = handle, workspace, ctypes.c_uint64(0)
        self.alpha, self.beta = ALPHA_BETA[dtype]

    def tune(self, a, b, out, bias, fallback=None):
        """Keep the fastest of the candidate algorithms, timed on these operands. False if none
        runs, or if `fallback` (the plain path's product, timed alongside) is faster still.

        cuBLASLt's first guess is not always its best (on the seed model's Linear GEMMs,
        timing its candidates took 0.6 ms off an fp32 step)."""
        timings = [] if fallback is None else [(_elapsed_ms(fallback), -1)]
        for i in range(self.found):
            self.algo = ctypes.byref(self.candidates[i].algo)
            try:
                timings.append((_elapsed_ms(lambda: self.run(a, b, out, bias)), i))
            except RuntimeError:
                continue
        best = min(timings, default=(0, -1))[1]
        if best >= 0:
            self.algo = ctypes.byref(self.candidates[best].algo)
        return best >= 0

    def run(self, a, b, out, bias):
        lib = _lib
        if bias is not None:
            self.bias.value = bias.data.ptr
            _check(lib.cublasLtMatmulDescSetAttribute(self.desc, _DESC_BIAS_POINTER, ctypes.byref(self.bias), 8),
                   "DescSetAttribute")
        layout_b, layout_a, layout_out = self.layouts
        _check(lib.cublasLtMatmul(self.handle, self.desc, self.alpha, b.data.ptr, layout_b, a.data.ptr, layout_a,
                                  self.beta, out.data.ptr, layout_out, out.data.ptr, layout_out,
                                  self.algo, self.workspace.data.ptr, self.workspace.nbytes,
                                  cupy.cuda.get_current_stream().ptr), "Matmul")


def _elapsed_ms(fn):
    """GPU time of _TUNING_RUNS calls of fn, after one call that also loads its kernels."""
    fn()
    start, stop = cupy.cuda.Event(), cupy.cuda.Event()
    start.record()
    for _ in range(_TUNING_RUNS):
        fn()
    stop.record()
    stop.synchronize()
    return cupy.cuda.get_elapsed_time(start, stop)


def matmul(a, b, trans_a=False, trans_b=False, bias=None, relu=False, fallback=None):
    """op(a) @ op(b) (+ bias) (then ReLU) for C-contiguous 2-D arrays; op transposes.
    None when cuBLASLt can't take it (then use the plain path). `fallback`, the plain
    path's product as a function, competes in the shape's one-time tuning: when it wins,
    this returns None for that shape from then on."""
    operands = (a, b) if bias is None else (a, b, bias)
    if a.dtype not in _TYPES or not _library():
        return None
    for x in operands:
        if x.dtype != a.dtype or not x.flags.c_contiguous or x.data.ptr % _ALIGNMENT or x.size == 0:
            return None
    epilogue = (_EPILOGUE_RELU if relu else 0) | (_EPILOGUE_BIAS if bias is not None else 0) or _EPILOGUE_DEFAULT
    key = (a.device.id, a.dtype, tf32(), a.shape, b.shape, trans_a, trans_b, epilogue)
    plan = _plans.get(key, False)
    if plan is False:
        if a.ndim != 2 or b.ndim != 2 or (a.shape[0] if trans_a else a.shape[1]) != (b.shape[1] if trans_b else
                                                                                   b.shape[0]):
            raise ValueError(f"matmul takes 2-D arrays with equal inner sizes, got {a.shape}{'.T' * trans_a} @ "
                             f"{b.shape}{'.T' * trans_b}")
        plan = _Plan(*key)
        out = cupy.empty(plan.out_shape, a.dtype)
        plan = _plans[key] = plan if plan.tune(a, b, out, bias, fallback) else None
    if plan is None:
        return None
    out = cupy.empty(plan.out_shape, a.dtype)
    plan.run(a, b, out, bias)
    return out
