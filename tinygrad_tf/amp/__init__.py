"""Mixed precision: GradScaler (loss scaling for float16 training), as torch.amp."""
from .grad_scaler import GradScaler
