"""tinygrad_tf.utils: torch.utils's names. `data` holds Dataset, DataLoader and the samplers."""
from . import data

__all__ = ["data"]
