"""The class-sharded JAX engine: the reference drivers with the class axis on a device mesh.

The facade reaches it through ``GLN("jax", ..., devices=...)`` or ``mesh=``; the state it owns is
the padded, sharded state of :mod:`gln_jax.core._sharding`, and everything it returns (outputs,
the reference state of checkpoints and ports) holds the real classes only.
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh

from gln_jax.api.backends import get_backend, make_engine
from gln_jax.api.engine import fit_epochs, gating_input
from gln_jax.core import _sharding as sharding
from gln_jax.core.types import GLNConfig, GLNState, PRNGKey


def resolve_mesh(devices=None, mesh: Mesh | None = None, axis: str = sharding.CLASS_AXIS) -> Mesh:
    """The mesh of a ``devices=`` or ``mesh=`` keyword (exactly one of them given)."""
    if (devices is None) == (mesh is None):
        raise ValueError("give exactly one of devices= and mesh=")
    if mesh is not None:
        if not isinstance(mesh, Mesh):
            raise TypeError(f"mesh must be a jax.sharding.Mesh, got {type(mesh).__name__}")
        if mesh.size == 0:
            raise ValueError(
                f"mesh has no devices (axis sizes {dict(mesh.shape)}): give a mesh with at "
                "least one device on every axis"
            )
        return mesh
    if isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        available = jax.devices()
        if not 1 <= devices <= len(available):
            raise ValueError(f"devices={devices}, but {len(available)} devices are available")
        devices = available[: int(devices)]
    if isinstance(devices, str) or not hasattr(devices, "__iter__"):
        raise TypeError(f"devices must be a count or a list of jax devices, got {devices!r}")
    devices = list(devices)
    if not devices:
        raise ValueError("devices= is empty: give at least one jax device (or a count)")
    if not all(isinstance(d, jax.Device) for d in devices):
        raise TypeError(f"devices must be a non-empty list of jax devices, got {devices!r}")
    return sharding.make_mesh(devices, axis)


class ShardedJaxEngine:
    """The reference implementation with the one-vs-all classes sharded over a mesh axis."""

    name = "jax"

    def __init__(self, config: GLNConfig, mesh: Mesh, axis: str = sharding.CLASS_AXIS):
        if config.dtype == "float64" and not jax.config.jax_enable_x64:
            raise ValueError(
                "dtype='float64' needs 64-bit JAX: call "
                "jax.config.update('jax_enable_x64', True) first (or use another backend)"
            )
        self.config = config
        self.layout = sharding.class_sharding(config, mesh, axis)

    def init(self, key: PRNGKey) -> GLNState:
        """The state of ``gln_jax.init(key, config)``, drawn straight onto the mesh."""
        state, _ = sharding.init_sharded(key, self.config, self.layout.mesh, self.layout.axis)
        return state

    def from_reference(self, state: GLNState) -> GLNState:
        return sharding.shard_state(state, self.layout)

    def to_reference(self, state: GLNState) -> GLNState:
        return sharding.unshard_state(state, self.layout)

    def step(self, state) -> int:
        return int(sharding.to_host(state.step))

    def predict(self, state, inputs, side_info):
        side_info = gating_input(inputs, side_info)
        p = sharding.predict_sharded(state, inputs, side_info, layout=self.layout)
        return sharding.to_host(p)

    def train(self, state, inputs, side_info, targets, rates):
        side_info = gating_input(inputs, side_info)
        size = inputs.shape[0]
        return sharding.fit_sharded(
            state,
            inputs,
            side_info,
            targets,
            rates,
            layout=self.layout,
            batch_size=size,
            chunk_size=size,
        )

    #: A sharded model trains in XLA only (the fused kernel serves one CPU device).
    routes = ("auto", "xla")

    def fit(self, state, inputs, side_info, targets, rates, batch_size, num_epochs=1, route="auto"):
        def stream(state, inputs, side_info, targets, rates, *, config, batch_size):
            return sharding.fit_sharded(
                state, inputs, side_info, targets, rates, layout=self.layout, batch_size=batch_size
            )

        return fit_epochs(
            stream,
            state,
            inputs,
            side_info,
            targets,
            rates,
            config=self.config,
            batch_size=batch_size,
            num_epochs=num_epochs,
        )


def make_facade_engine(backend: str, config: GLNConfig, devices=None, mesh: Mesh | None = None):
    """The engine of ``GLN(backend, ..., devices=, mesh=)``: sharded when either is given."""
    if devices is None and mesh is None:
        return make_engine(backend, config)
    if get_backend(backend).name != "jax":
        raise ValueError(f"devices= and mesh= shard the 'jax' backend only, not {backend!r}")
    resolved = resolve_mesh(devices, mesh)
    axis = resolved.axis_names[0] if mesh is not None else sharding.CLASS_AXIS
    if mesh is not None and len(resolved.axis_names) != 1:
        raise ValueError(f"mesh must have one axis (the classes), got {resolved.axis_names}")
    return ShardedJaxEngine(config, resolved, axis)
