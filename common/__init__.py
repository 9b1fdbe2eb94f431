"""The bottom layer: helpers every other layer may use (atomic files, device names, the Ray
connection, the ``gnnrec`` logger). Imports nothing else of gnnrec and, at import time, nothing
beyond the standard library, so a numpy-only process can use it."""
