"""vfi command-line interface: thin Click commands over the engine (and train, lazily)."""
