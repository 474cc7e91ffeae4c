"""Configuration of the port tests: the session's hypothesis seed, TF32 off in TensorFlow."""

import importlib.util

from .port_harness import SESSION_SEED

if importlib.util.find_spec("tensorflow") is not None:
    import tensorflow as tf

    tf.config.experimental.enable_tensor_float_32_execution(False)


def pytest_report_header(config):
    return (
        f"gln ports: hypothesis seed {SESSION_SEED} for every backend "
        "(set GLN_PORTS_SEED to repeat this session's examples)"
    )


def pytest_configure(config):
    # Reporting a falsifying example makes hypothesis import a module that uses the deprecated
    # mypy_extensions.TypedDict; under filterwarnings=error that warning would replace the
    # report of the failure with an INTERNALERROR.
    config.addinivalue_line("filterwarnings", "ignore::DeprecationWarning:mypy_extensions")
