"""Layer 2: the store interface and its implementations (SQL, local artifacts)."""
