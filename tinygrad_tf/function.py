"""Function: the unit of differentiation, and a node of the graph.

An op subclasses Function and writes `forward(*args)` and `backward(grad)` on raw
backend arrays, side by side. `forward` stores what backward needs on `self` (the
context); `backward` returns one gradient per argument (None where there is none).
Non-array arguments (Python numbers, axes, seeds) are passed through as constants.
`self.needs_grad` (one bool per argument) is set before forward runs, so an op can skip
the work and the memory of gradients nobody asked for. Ops are run on tensors by
tensor.apply, which also picks a fused twin of the op when one applies (dispatch.py).
"""


# What a node keeps once its backward has run: the graph's links and what the hooks and checks read.
_KEPT = ("parents", "input_shapes", "_hooks", "retained", "needs_grad", "saved_versions")


class Function:
    """`reads`: the indices of the tensor arguments whose values backward uses (None: all of them),
    and `reads_output`: whether it uses the output's. If one of those is written in place between
    forward and backward, backward raises instead of using the new values (tensor.py's _version)."""
    reads, reads_output = None, False
    is_leaf_node = False
    # Defaults on the class: a node is built for every op, so __init__ sets nothing.
    parents = input_shapes = needs_grad = saved_versions = ()
    retained = None
    released = False

    @classmethod
    def reads_for(cls, needs_grad):
        """`reads` for a call whose inputs need these gradients (an op whose backward reads an input
        only for another input's gradient says so here)."""
        return cls.reads

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def backward(self, grad):
        raise NotImplementedError

    @property
    def hooks(self):
        """Functions grad -> grad (arrays) run on the gradient of this op's output."""
        if "_hooks" not in vars(self):
            self._hooks = []
        return self._hooks

    def run_output_hooks(self, grad):
        """Hooks registered on this op's output tensor, then retain_grad."""
        for hook in vars(self).get("_hooks", ()):
            grad = hook(grad)
        if self.retained is not None:
            t = self.retained()
            if t is not None:
                t._accumulate(grad)
        return grad

    def release(self):
        """Drop everything saved for backward (called after backward, as in PyTorch)."""
        state = vars(self)
        kept = {name: state[name] for name in _KEPT if name in state}
        state.clear()
        state.update(kept)
        self.released = True
