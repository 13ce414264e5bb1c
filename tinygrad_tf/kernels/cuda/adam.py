"""Adam/AdamW's update as multi-tensor kernels: one launch updates up to SLOTS parameters.

Adam(..., fused=True) (optim/adam.py) hands all its GPU params to update() in its step(),
so a step of the seed GPT's 78 parameters is 7 launches instead of ~900. The arithmetic is
the textbook update's (Adam._update), operation for operation, each rounded once (no fused
multiply-adds), so the two agree bit for bit.

With a GradScaler (amp/grad_scaler.py), update() also takes `found_inf`, a float32 on the GPU,
nonzero when a gradient held an inf or NaN, and one int32 `skipped` count per param, also on
the GPU; nothing is read back, so the step can be captured in a CUDA graph. A launch that
finds found_inf nonzero writes nothing, and a second small launch adds one to each param's
count. The host counts every step it launches, so a param has really taken step - skipped
steps, and that is what its bias corrections use: while skipped is 0 (always, without a
scaler) the launch uses the host's scalars, bit for bit as before; after a skip it works them
out itself, in double with CUDA's pow (within an ulp or two of Python's ** before the
rounding to T, so a run with skips matches the textbook update to rounding, not bit for bit)."""
import numpy as np

from ...backend import cupy
from ._cuda import on_gpu, raw_kernel

SLOTS = 12
_UPDATE = r"""
T g = grad[i];
T p = param[i];
if (l2 != (T)0) g = tg_add(g, tg_mul(l2, p));
if (decay != (T)1) p = tg_mul(p, decay);
T m = tg_add(tg_mul(exp_avg[i], beta1), tg_mul(g, one_minus_beta1));
T v = tg_add(tg_mul(exp_avg_sq[i], beta2), tg_mul(tg_mul(g, g), one_minus_beta2));
T denom = tg_add(tg_div(tg_sqrt(v), sqrt_bias_correction2), eps);
param[i] = tg_sub(p, tg_mul(tg_div(m, denom), step_size));
exp_avg[i] = m;
exp_avg_sq[i] = v;
"""
_SCALER = r"""
    if (found_inf) {                       // a GradScaler's step (null without one)
        if (*found_inf != 0.0f) return;    // an inf/NaN gradient: skip, write nothing
        if (*skipped != 0) {               // this param has taken step - *skipped steps
            double t = (double)(step - *skipped);
            sqrt_bias_correction2 = (T)pow(1.0 - pow(beta2_d, t), 0.5);
            step_size = (T)(lr_d / (1.0 - pow(beta1_d, t)));
        }
    }
"""


def _source():
    """The kernel for SLOTS parameters; block row blockIdx.y updates parameter blockIdx.y.

    The parameter is picked with a switch over the kernel's arguments: an array of pointers
    indexed by blockIdx.y would sit in local memory and be written by every thread (seen:
    480-byte stack frames and 0.5 ms per launch)."""
    slots = range(SLOTS)
    args = ", ".join(f"T* p{s}, const T* g{s}, T* m{s}, T* v{s}, long long n{s}, const int* k{s}" for s in slots)
    cases = "\n".join(f"        case {s}: param = p{s}; grad = g{s}; exp_avg = m{s}; exp_avg_sq = v{s}; "
                       f"n = n{s}; skipped = k{s}; break;" for s in slots)
    return (f'extern "C" __global__ void adam_multi({args}, T l2, T decay, T beta1, T one_minus_beta1, '
            f"T beta2, T one_minus_beta2, T sqrt_bias_correction2, T eps, T step_size,\n"
            f"        const float* found_inf, long long step, double lr_d, double beta1_d, double beta2_d) {{\n"
            "    T* param = 0; const T* grad = 0; T* exp_avg = 0; T* exp_avg_sq = 0; long long n = 0;\n"
            "    const int* skipped = 0;\n"
            f"    switch (blockIdx.y) {{\n{cases}\n    }}\n" + _SCALER +
            "    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;\n"
            "         i += (long long)gridDim.x * blockDim.x) {\n" + _UPDATE + "    }\n}\n")


def _count_source():
    """One thread per slot: add one to the param's skipped count when found_inf is nonzero."""
    args = ", ".join(f"int* k{s}" for s in range(SLOTS))
    cases = " ".join(f"case {s}: *k{s} += 1; break;" for s in range(SLOTS))
    return (f'extern "C" __global__ void adam_count_skips({args}, const float* found_inf, int used) {{\n'
            f"    if (*found_inf == 0.0f || (int)threadIdx.x >= used) return;\n"
            f"    switch (threadIdx.x) {{ {cases} }}\n}}\n")


_SOURCE, _COUNT_SOURCE = _source(), _count_source()


def supports(param, grad, *state):
    """GPU arrays of one float dtype, contiguous (the kernel indexes them flat)."""
    arrays = (param, grad) + state
    return on_gpu(*arrays) and all(a.dtype == param.dtype and a.flags.c_contiguous for a in arrays)


def update(params, grads, exp_avgs, exp_avg_sqs, *, lr, beta1, beta2, eps, weight_decay, decoupled, step,
           found_inf=None, skipped=None):
    """One Adam/AdamW step of every param (same dtype and device, same hyperparameters and step
    count), in place: one launch per SLOTS params. The scalars are worked out once, in the
    params' dtype, as optim/adam.py's textbook update computes them.

    found_inf (a 0-d float32 on the params' GPU) and skipped (one 0-d int32 per param, there
    too) come together, from a GradScaler's step: see the module's docstring."""
    if (found_inf is None) != (skipped is None):
        raise ValueError("update() takes found_inf and skipped together, or neither")
    if found_inf is not None and (found_inf.dtype != np.float32 or found_inf.shape != ()):
        raise ValueError(f"found_inf must be a 0-d float32 array, got {found_inf.dtype} of shape {found_inf.shape}")
    dtype, t = params[0].dtype, params[0].dtype.type
    decay = 1 - lr * weight_decay if decoupled and weight_decay else 1.0
    scalars = (t(0.0 if decoupled else weight_decay), t(decay), t(beta1), t(1 - beta1), t(beta2), t(1 - beta2),
               t((1 - beta2 ** step) ** 0.5), t(eps), t(lr / (1 - beta1 ** step)),
               found_inf, np.int64(step), np.float64(lr), np.float64(beta1), np.float64(beta2))
    kernel, threads = raw_kernel(_SOURCE, "adam_multi", dtype), 256
    entries = list(zip(params, grads, exp_avgs, exp_avg_sqs, skipped or [None] * len(params)))
    with cupy.cuda.Device(params[0].device.id):
        for start in range(0, len(entries), SLOTS):
            chunk = entries[start:start + SLOTS]
            args, largest = [], 0
            for s in range(SLOTS):  # unused slots repeat the first param with a size of 0
                p, g, m, v, k = chunk[s] if s < len(chunk) else chunk[0]
                size = p.size if s < len(chunk) else 0
                args += [p, g, m, v, np.int64(size), k]  # k None: a null pointer
                largest = max(largest, size)
            blocks = min(max(1, -(-largest // threads)), 512)
            kernel((blocks, SLOTS), (threads,), tuple(args) + scalars)
            if found_inf is not None:  # after the update, which read the counts
                counts = [entry[4] for entry in chunk] + [chunk[0][4]] * (SLOTS - len(chunk))
                raw_kernel(_COUNT_SOURCE, "adam_count_skips", dtype)(
                    (1,), (SLOTS,), tuple(counts) + (found_inf, np.int32(len(chunk))))
