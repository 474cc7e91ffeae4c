"""Host side: the engine protocol, the backend registry, the facade, checkpoints, validation."""
