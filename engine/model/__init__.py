"""The interpolation network and its parts (one concept per file)."""
