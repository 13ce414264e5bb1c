"""The differentiable ops, grouped by kind; each is one Function subclass."""
