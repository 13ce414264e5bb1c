"""The backward graph walk.

The graph is made of `Function` nodes; each remembers, per input, the node the
gradient flows to next: the input's own Function, or the input tensor itself when
it is a leaf. Tensors in the middle of the graph are not kept alive by it, so the
only memory a graph holds is what each op saved for its backward.
"""
from . import dispatch
from .ops.elementwise import Add


def unbroadcast(grad, shape):
    """Sum a gradient back to `shape`: the one place broadcasting is undone."""
    if grad.shape == shape:
        return grad
    extra = grad.ndim - len(shape)
    axes = tuple(range(extra)) + tuple(i + extra for i, n in enumerate(shape)
                                       if n == 1 and grad.shape[i + extra] != 1)
    grad = grad.sum(axis=axes, keepdims=True) if axes else grad
    return grad.reshape(shape)


def topological_order(root):
    """Functions reachable from root, each before every Function it consumes.

    Iterative depth-first post-order, so a 10,000-op chain needs no recursion. A node
    counts as visited when it is first expanded (not when pushed), so it is only
    emitted after all its inputs' subgraphs are done."""
    order, visited, stack = [], set(), [(root, False)]
    while stack:
        fn, expanded = stack.pop()
        if expanded:
            order.append(fn)
            continue
        if fn in visited:
            continue
        visited.add(fn)
        stack.append((fn, True))
        for parent in fn.parents:
            if parent is not None and not parent.is_leaf_node and parent not in visited:
                stack.append((parent, False))
    order.reverse()
    return order


def backward(tensor, grad, retain_graph=False):
    """Accumulate d(tensor)/d(leaf) * grad into every leaf's .grad.

    A gradient that reaches one node from several paths is summed with the Add op, through
    dispatch (one fused kernel on the GPU). Leaves are tensors: the walk calls their
    _run_hooks and _accumulate."""
    root = tensor._ctx
    if root is None:
        tensor._accumulate(tensor._run_hooks(grad))
        tensor._run_post_hooks()
        return
    grads = {root: grad}
    leaves = {}
    for fn in topological_order(root):
        g = grads.pop(fn, None)
        if g is None:
            continue
        g = fn.run_output_hooks(g)
        if fn.released:
            raise RuntimeError(
                "Trying to backward through the graph a second time (or directly access "
                "saved tensors after they have already been freed). Saved intermediate "
                "values of the graph are freed when you call .backward(). Specify "
                "retain_graph=True if you need to backward through the graph a second time.")
        for version, seen in fn.saved_versions:
            if version[0] != seen:
                raise RuntimeError(
                    f"one of the variables needed for gradient computation has been modified by an inplace "
                    f"operation: {type(fn).__name__}'s input or output is at version {version[0]}; expected "
                    f"version {seen} instead (it was written to after the forward pass, e.g. by copy_, "
                    f"__setitem__ or an optimizer step)")
        in_grads = fn.backward(g)
        if not isinstance(in_grads, tuple):
            in_grads = (in_grads,)
        if not retain_graph:
            fn.release()
        for parent, shape, ig in zip(fn.parents, fn.input_shapes, in_grads):
            if parent is None or ig is None:
                continue
            ig = unbroadcast(ig, shape)
            book = leaves if parent.is_leaf_node else grads
            book[parent] = ig if parent not in book else dispatch.run(Add, book[parent], ig)
    handed = set()  # arrays already given to a leaf: a second leaf gets a copy, never an alias
    for leaf, g in leaves.items():
        hooked = leaf._run_hooks(g)
        leaf._accumulate(hooked, owned=hooked is g and g.base is None and id(g) not in handed)
        handed.add(id(g))
    for leaf in leaves:  # after every leaf's .grad is complete (DistributedDataParallel averages them)
        leaf._run_post_hooks()
