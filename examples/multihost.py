"""Train one class-sharded GLN across several processes (hosts) with ``jax.distributed``.

Every process runs this same script with its own ``--process-id``; process 0's address is the
coordinator. Each process holds only its own devices' classes; the stream is replicated (every
process reads the same examples) and only the ``[B, C]`` predictions cross processes.

Loopback, two processes of four forced CPU devices each (see the README's "Many devices and
hosts" section for the commands)::

    XLA_FLAGS=--xla_force_host_platform_device_count=4 \
        python examples/multihost.py --coordinator 127.0.0.1:12355 --num-processes 2 \
        --process-id 0 &
    XLA_FLAGS=--xla_force_host_platform_device_count=4 \
        python examples/multihost.py --coordinator 127.0.0.1:12355 --num-processes 2 \
        --process-id 1
"""

import argparse

import jax
import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--coordinator", required=True, help="host:port of process 0")
    parser.add_argument("--num-processes", type=int, required=True)
    parser.add_argument("--process-id", type=int, required=True)
    parser.add_argument("--classes", type=int, default=100)
    parser.add_argument("--examples", type=int, default=2000)
    args = parser.parse_args()

    # Before any other JAX call: connects to the coordinator, then jax.devices() lists the
    # devices of every process and jax.local_devices() this process's own.
    jax.distributed.initialize(
        args.coordinator,
        num_processes=args.num_processes,
        process_id=args.process_id,
        initialization_timeout=120,
    )
    from gln_jax import make_config
    from gln_jax import sharding

    config = make_config([16, 16, 1], 64, num_classes=args.classes)
    mesh = sharding.make_mesh()  # every device of every process
    state, layout = sharding.init_sharded(jax.random.key(0), config, mesh)
    rng = np.random.default_rng(0)  # every process must see the same stream
    X = rng.uniform(size=(args.examples, 64)).astype(np.float32)
    y = rng.integers(0, args.classes, args.examples)
    rates = np.full(args.examples, 0.01, np.float32)
    state, p = sharding.fit_sharded(state, X, X, y, rates, layout=layout)
    accuracy = float((p.argmax(axis=1) == y).mean())
    if jax.process_index() == 0:
        print(
            f"{jax.process_count()} processes, {len(jax.devices())} devices, "
            f"{layout.num_classes} classes ({layout.config.num_classes} padded): "
            f"online accuracy {accuracy:.3f}, step {int(sharding.to_host(state.step))}"
        )
    jax.distributed.shutdown()


if __name__ == "__main__":
    main()
