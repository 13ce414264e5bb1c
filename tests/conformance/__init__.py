"""The PyTorch conformance suite: torch programs (programs/), run as written with torch and,
with only their imports changed, with tinygrad_tf (harness.py); which programs exist and how
they are compared (registry.py); the generated compatibility page (report.py)."""
