"""Layer 3: the Run handle, and the logger that keeps training fast and loses nothing."""
