"""Data: the IDX format, verified downloads, the dataset registry, deskewing, MNIST loaders."""
