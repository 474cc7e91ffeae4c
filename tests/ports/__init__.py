"""Differential tests of the NumPy, PyTorch and TensorFlow ports against the reference."""
