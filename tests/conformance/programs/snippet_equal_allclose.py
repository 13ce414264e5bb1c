import torch

# Checking results against each other the way scripts and notebooks do.
a = torch.tensor([1.0, 2.0, 3.0])
b = a.clone()
c = a + 1e-7

RESULTS = {
    "equal": torch.equal(a, b),
    "not_equal": torch.equal(a, c),
    "allclose": torch.allclose(a, c),
    "allclose_tol": torch.allclose(a, a + 0.01, atol=1e-3),
    "isclose": torch.isclose(a, c),
}
