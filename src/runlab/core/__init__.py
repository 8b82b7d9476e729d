"""Layer 1: entities, states, errors and settings. Imports nothing else from runlab."""
