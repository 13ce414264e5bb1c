"""Counter-based uniform random numbers: u = hash(seed, element index).

Dropout draws its masks from these, on every device and in every implementation: a mask is
a pure function of its seed, so a backward (or a fused GPU kernel) can make it again
instead of keeping it, and the textbook op and its fused twin draw the very same mask.
The hash is splitmix64 (Steele, Lea & Flood); the GPU twins compute the same in CUDA.
"""
import numpy as np

GOLDEN, MIX1, MIX2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def uniform(seed, shape, dtype, xp=np):
    """Uniforms in [0, 1) of `dtype` for a C-ordered array of `shape`: element i hashes (seed, i).

    float32 takes the top 24 bits of the hash, float64 the top 53: each value is exact."""
    u64 = xp.uint64
    z = u64(seed) + xp.arange(1, int(np.prod(shape)) + 1, dtype=u64) * u64(GOLDEN)
    z = (z ^ (z >> u64(30))) * u64(MIX1)
    z = (z ^ (z >> u64(27))) * u64(MIX2)
    z = z ^ (z >> u64(31))
    dtype = np.dtype(dtype)
    if dtype not in (np.float32, np.float64):
        raise ValueError(f"uniform draws float32 or float64, got {dtype}")
    bits, step = (40, 2.0 ** -24) if dtype == np.float32 else (11, 2.0 ** -53)
    return ((z >> u64(bits)).astype(dtype) * dtype.type(step)).reshape(shape)


def dropout_scale(seed, shape, p, dtype, xp=np):
    """What each element is multiplied by in dropout: 1 / (1 - p) where u >= p (kept), else 0.
    Float32 for the 16-bit dtypes: their own 8 or 11 bits would make p and the scale coarse."""
    draw = np.dtype(np.float64 if np.dtype(dtype) == np.float64 else np.float32)
    return (uniform(seed, shape, draw, xp) >= p) * draw.type(1 / (1 - p))
