"""The one registry of backends, read by the facade, the command line, the benchmark and tests.

Adding a backend is one :class:`Backend` entry here plus its package, whose engine follows the
:class:`gln_jax.api.engine.Engine` protocol.
"""

from __future__ import annotations

import importlib
import importlib.util
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:  # typing only: the registry imports without JAX (the command line's --help)
    from gln_jax.core.types import GLNConfig


class Backend(NamedTuple):
    """One backend of the facade.

    Attributes:
        name: the canonical ``backend`` argument.
        module: the module holding the engine class.
        engine: the engine class name (an :class:`~gln_jax.api.engine.Engine`).
        framework: the package that must be importable (``None`` for NumPy and JAX).
        extra: the ``pip install 'gln-jax[extra]'`` that brings the framework, or ``None``.
        aliases: other accepted spellings.
        port: the port package with its own ``GLN`` class, or ``None`` for the reference.
        construction_peak: the most memory building a model takes, as a multiple of its state's
            bytes (measured: the state is drawn by JAX, then copied into the framework's arrays;
            see :func:`gln_jax.api.memory.check_construction_memory`).
        gaussian: ``(module, engine class)`` of the backend's Gaussian-family engine, or
            ``None`` when the backend has none.
    """

    name: str
    module: str
    engine: str
    framework: str | None
    extra: str | None
    aliases: tuple[str, ...] = ()
    port: str | None = None
    construction_peak: float = 2.5
    gaussian: tuple[str, str] | None = None


# Construction peaks measured on a 2.1 GiB float32 state (layers [64, 64, 1], 2**10 rows,
# N = 784, 10 classes; the rise of VmHWM over the RSS before building): jax 1.04, numpy 2.02,
# pytorch 2.02, tf 3.77. The factors below round those up.
BACKENDS: tuple[Backend, ...] = (
    Backend(
        "jax",
        "gln_jax.api.jax_engine",
        "JaxEngine",
        None,
        None,
        construction_peak=1.5,
        gaussian=("gln_jax.api.gaussian_engine", "GaussianJaxEngine"),
    ),
    Backend(
        "numpy",
        "gln_numpy.engine",
        "NumpyEngine",
        None,
        None,
        port="gln_numpy",
        construction_peak=2.2,
        gaussian=("gln_numpy.gaussian_engine", "GaussianNumpyEngine"),
    ),
    Backend(
        "pytorch",
        "gln_torch.engine",
        "TorchEngine",
        "torch",
        "torch",
        ("torch",),
        "gln_torch",
        construction_peak=2.2,
        gaussian=("gln_torch.gaussian_engine", "GaussianTorchEngine"),
    ),
    Backend(
        "tf",
        "gln_tf.engine",
        "TFEngine",
        "tensorflow",
        "tf",
        ("tensorflow",),
        "gln_tf",
        construction_peak=4.0,
        gaussian=("gln_tf.gaussian_engine", "GaussianTFEngine"),
    ),
)
_BY_NAME = {b.name: b for b in BACKENDS} | {a: b for b in BACKENDS for a in b.aliases}


def backend_names() -> list[str]:
    """The valid ``backend`` arguments, aliases included."""
    return sorted(_BY_NAME)


def canonical_names() -> list[str]:
    """One name per backend, in registry order."""
    return [b.name for b in BACKENDS]


def get_backend(backend: str) -> Backend:
    """The registry entry of ``backend`` (any accepted spelling, case-insensitive).

    Raises:
        TypeError: ``backend`` is not a string.
        ValueError: an unknown backend (the message lists the valid names).
    """
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, one of {backend_names()}, got {backend!r}")
    entry = _BY_NAME.get(backend.lower())
    if entry is None:
        raise ValueError(f"unknown backend {backend!r}; valid backends: {backend_names()}")
    return entry


def is_available(backend: str) -> bool:
    """Whether the framework of ``backend`` can be imported here."""
    entry = get_backend(backend)
    if entry.framework is None:
        return True
    return importlib.util.find_spec(entry.framework) is not None


def make_engine(backend: str, config: GLNConfig):
    """Builds the engine of ``backend`` for ``config`` (and its neuron family).

    Raises:
        ValueError: an unknown backend (the message lists the valid names), or a backend
            without an engine for the config's family.
        ImportError: the backend's framework is not installed (the message names the extra).
    """
    entry = get_backend(backend)
    module_name, engine_name = entry.module, entry.engine
    if config.family == "gaussian":
        if entry.gaussian is None:
            with_family = [b.name for b in BACKENDS if b.gaussian is not None]
            raise ValueError(
                f"backend {backend!r} has no Gaussian-family engine; use one of {with_family}"
            )
        module_name, engine_name = entry.gaussian
    try:
        module = importlib.import_module(module_name)
    except ImportError as err:
        if entry.extra is None:  # a port shipped with gln-jax itself: the install is broken
            message = (
                f"backend {backend!r} needs its port, which is not importable ({err.name}); "
                "reinstall gln-jax (the port ships with it)"
            )
        else:
            message = (
                f"backend {backend!r} needs a framework that is not installed ({err.name}); "
                f"install it with: pip install 'gln-jax[{entry.extra}]'"
            )
        raise ImportError(message, name=err.name) from err
    return getattr(module, engine_name)(config)
