"""python -m tests.conformance [--write]: print docs/pytorch_compatibility.md, or write it."""
import sys

from .report import render, write

if __name__ == "__main__":
    if "--write" in sys.argv[1:]:
        print(f"wrote {write()}")
    else:
        print(render())
