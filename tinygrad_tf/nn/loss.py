"""Loss functions as modules (torch.nn's CrossEntropyLoss, NLLLoss, MSELoss, L1Loss): each holds
its options and calls its nn.functional form."""
from . import functional as F
from .module import Module


class CrossEntropyLoss(Module):
    def __init__(self, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__()
        self.ignore_index, self.reduction, self.label_smoothing = ignore_index, reduction, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, self.ignore_index, self.reduction, self.label_smoothing)


class _Loss(Module):
    """A loss whose one option is torch's reduction= ("mean", "sum" or "none")."""
    function = None  # the nn.functional form

    def __init__(self, reduction="mean"):
        super().__init__()
        self.reduction = reduction

    def forward(self, input, target):
        return type(self).function(input, target, reduction=self.reduction)


class NLLLoss(_Loss):
    function = staticmethod(F.nll_loss)


class MSELoss(_Loss):
    function = staticmethod(F.mse_loss)


class L1Loss(_Loss):
    function = staticmethod(F.l1_loss)
