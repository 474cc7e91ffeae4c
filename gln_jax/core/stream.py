"""The host-side driver of exact online and batched learning over a long stream.

:func:`fit_stream` feeds a stream through one jitted pass per fixed-size chunk, so memory stays
bounded and only a handful of shapes are ever compiled. Each pass takes the fastest exact
route: the fused CPU kernel (:mod:`gln_jax.core.kernel`), Gram chunks
(:mod:`gln_jax.core.chunked`), or the pure ``lax.scan`` drivers of :mod:`gln_jax.core.scan`,
:func:`scan_update` and :func:`scan_batch_update`, which this module re-exports.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gln_jax.core import checks, kernel
from gln_jax.core.chunked import chunked_scan_update, use_chunked
from gln_jax.core.scan import scan_batch_update as scan_batch_update
from gln_jax.core.scan import scan_update as scan_update
from gln_jax.core.schedules import host_rates
from gln_jax.core.shapes import ArrayLike, Float, Rate, Real, Shaped
from gln_jax.core.types import CHUNK_SIZE, GLNConfig, GLNState

#: The routes of :func:`fit_stream`: ``"auto"`` (the fused kernel where
#: :func:`gln_jax.core.kernel.use_kernel` says so, else XLA), ``"kernel"`` (the fused kernel
#: or an error saying why not) and ``"xla"`` (the pure JAX drivers, never the kernel).
ROUTES = ("auto", "kernel", "xla")


def check_route(route, *, function: str = "fit_stream") -> str:
    """Returns ``route`` if it is one of :data:`ROUTES`.

    Raises:
        ValueError: naming the routes.
    """
    if not isinstance(route, str) or route not in ROUTES:
        raise ValueError(f"{function}: route must be one of {ROUTES}, got {route!r}")
    return route


def kernel_route(route: str, config: GLNConfig, state, batch_size: int) -> bool:
    """Whether a stream of ``state`` runs in the fused kernel on ``route``.

    Raises:
        RuntimeError: ``route="kernel"`` where the kernel cannot serve (with the reason).
    """
    if route == "xla":
        return False
    if route == "auto":
        return kernel.use_kernel(config, state, batch_size)
    if kernel.use_kernel(config, state, batch_size):
        return True
    status = kernel.status()
    reason = status.reason or status.cause or "the kernel is not available"
    if status.in_use:  # loaded, yet not for this state or config
        reason = "the state is not on one CPU device, or the config is not a Bernoulli GLN's"
    raise RuntimeError(
        f"route='kernel': the fused CPU kernel cannot train this stream: {reason} "
        "(route='auto' falls back to XLA)"
    )


@functools.partial(
    jax.jit, static_argnames=("config", "batch_size", "kernel_threads"), donate_argnums=(0,)
)
def _fit_chunk(
    state, inputs, side_info, targets, learning_rates, mask, *, config, batch_size, kernel_threads=0
):
    if kernel_threads:  # the fused CPU kernel, its classes split over this many threads
        return kernel.kernel_scan_update(
            state,
            inputs,
            side_info,
            targets,
            learning_rates,
            config=config,
            mask=mask,
            threads=kernel_threads,
            batch_size=batch_size,
        )
    if batch_size == 1 and use_chunked(config):
        state, p, _ = chunked_scan_update(
            state, inputs, side_info, targets, learning_rates, config=config, mask=mask
        )
        return state, p
    if batch_size == 1:
        return scan_update(
            state, inputs, side_info, targets, learning_rates, config=config, mask=mask
        )
    shape = (-1, batch_size)
    state, p = scan_batch_update(
        state,
        inputs.reshape(*shape, inputs.shape[-1]),
        side_info.reshape(*shape, side_info.shape[-1]),
        targets.reshape(shape),
        learning_rates.reshape(shape),
        config=config,
        mask=mask.reshape(shape),
    )
    return state, p.reshape(-1, p.shape[-1])


def chunk_length(num_examples: int, batch_size: int, chunk_size: int) -> int:
    """Examples per compiled chunk: a power of two of batches, at most ``chunk_size``."""
    batches = -(-num_examples // batch_size)
    max_batches = max(1, chunk_size // batch_size)
    return batch_size * min(max_batches, 1 << max(0, batches - 1).bit_length())


def chunk_spans(total: int, batch_size: int, chunk_size: int):
    """``(start, stop, pad)`` of the chunks covering ``total`` examples, in order.

    Every chunk but the last holds :func:`chunk_length` of the whole stream; the last is
    padded only up to :func:`chunk_length` of what remains (a power of two of batches), so a
    stream of 10,000 examples runs chunks of 8,192 and 2,048, not two of 8,192. Chunk lengths
    stay powers of two of batches: few shapes are ever compiled.
    """
    start = 0
    while start < total:
        length = chunk_length(total - start, batch_size, chunk_size)
        stop = min(start + length, total)
        yield start, stop, length - (stop - start)
        start = stop


def take_chunk(array, start: int, stop: int, pad: int, fill=0, dtype=None) -> np.ndarray:
    """``array[start:stop]`` as NumPy (a memmap is read only there), padded with ``fill``."""
    chunk = np.asarray(array[start:stop], dtype=dtype)
    if pad:
        chunk = np.pad(chunk, [(0, pad)] + [(0, 0)] * (chunk.ndim - 1), constant_values=fill)
    return chunk


def check_finite(name: str, values, rows: int = 1 << 16) -> None:
    """Raises a ``ValueError`` naming ``name`` and the first non-finite entry of ``values``.

    A memmap is read ``rows`` rows at a time, so the check needs no copy of the stream.
    """
    dtype = np.asarray(values[:0]).dtype
    if not np.issubdtype(dtype, np.number) or dtype.kind == "c":
        raise ValueError(f"{name} must hold real numbers, got dtype {dtype}")
    for start in range(0, len(values), rows):
        block = np.asarray(values[start : start + rows])
        bad = ~np.isfinite(block)
        if bad.any():
            row, column = (int(i) for i in np.argwhere(bad)[0])
            raise ValueError(
                f"{name} must be finite, got {block[row, column]} at row {start + row}, "
                f"column {column}: nothing was learned"
            )


def check_stream(inputs, side_info, targets, learning_rates, batch_size, config: GLNConfig, step=0):
    """Host-side checks of :func:`fit_stream`'s arguments; returns ``(targets, rates)``.

    Raises:
        ValueError: naming the argument and the expected shape or range.
    """
    targets = np.asarray(targets)
    if targets.ndim != 1:
        raise ValueError(f"targets must have shape [T], got shape {targets.shape}")
    total = targets.shape[0]
    for name, value, width in (
        ("inputs", inputs, config.base_prediction_size),
        ("side_info", side_info, config.side_info_size),
    ):
        if tuple(np.shape(value)) != (total, width):
            raise ValueError(
                f"{name} must have shape [T, {width}] = {(total, width)} (T from targets), "
                f"got shape {tuple(np.shape(value))}"
            )
        check_finite(name, value)
    if targets.dtype != bool:
        if not np.issubdtype(targets.dtype, np.number) or not np.array_equal(
            targets, np.round(targets)
        ):
            raise ValueError(f"targets must hold integral class labels, got {targets[:8]!r}")
        if total and (targets.min() < 0 or targets.max() >= config.num_classes):
            raise ValueError(
                f"targets must be class labels in [0, {config.num_classes}), got values from "
                f"{targets.min()} to {targets.max()}"
            )
    if callable(learning_rates):  # a schedule, at the state's step (as the facades do)
        step = int(np.asarray(step))
        rates = host_rates(learning_rates, step, total, np.dtype(config.dtype))
    else:
        rates = np.asarray(learning_rates)
    if rates.ndim == 0:
        rates = np.full(total, rates)
    if rates.shape != (total,):
        raise ValueError(
            f"learning_rates must be a scalar or have shape [T] = ({total},) (one rate per "
            f"example of the stream), got shape {rates.shape}"
        )
    if not np.issubdtype(rates.dtype, np.number) or not np.isfinite(rates).all():
        raise ValueError("learning_rates must be finite numbers")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)):
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    if batch_size < 1:
        raise ValueError(f"batch_size must be a positive int, got {batch_size!r}")
    return targets, rates


def fit_stream(
    state: GLNState,
    inputs: Real[ArrayLike, "T P"],
    side_info: Real[ArrayLike, "T N"],
    targets: Shaped[ArrayLike, " T"],
    learning_rates: Real[ArrayLike, " T"] | Rate,
    *,
    config: GLNConfig,
    batch_size: int = 1,
    chunk_size: int = CHUNK_SIZE,
    route: str = "auto",
) -> tuple[GLNState, Float[np.ndarray, "T C"]]:
    """Trains on a whole stream in order, in fixed-size chunks (host-side driver).

    Each chunk is one jitted pass: the fused CPU kernel of :mod:`gln_jax.core.kernel` where
    its ``use_kernel`` says so (any batch size), else at ``batch_size == 1`` Gram chunks of
    :mod:`gln_jax.core.chunked` where its ``use_chunked`` says they win, else
    :func:`scan_update`, and above :func:`scan_batch_update`; the last chunk is padded with
    masked-out examples, so only a few chunk shapes are ever compiled. A last partial batch
    is a smaller batch. The caller's ``state`` is left intact.

    ``route`` chooses between the two implementations: ``"kernel"`` and ``"xla"`` compute the
    same updates in a different order of float operations, so their predictions agree to
    rounding at low rates (float32, rate 1e-4: within about 2e-7 over 2,000 MNIST examples)
    and drift apart along the stream at high rates, where the online update map is expansive
    (rate 1e-3: up to about 0.3 in float32 by 2,000 examples, with the same accuracy within
    noise). See the semantics page for the measurements.

    Args:
        state: the GLN state.
        inputs: ``[T, P]`` base probabilities (NumPy or JAX).
        side_info: ``[T, N]`` raw examples.
        targets: ``[T]`` class labels in ``[0, num_classes)``.
        learning_rates: ``[T]`` rate of each example, one scalar rate for all of them, or a
            schedule (a callable of the step, evaluated on the host at
            ``state.step, ..., state.step + T - 1``, as the ``GLN`` facade does).
        config: the network's config.
        batch_size: examples per update (above ``T``, one batch of ``T``).
        chunk_size: most examples per compiled scan; bounds device memory.
        route: ``"auto"`` (default: the kernel where it serves, else XLA), ``"kernel"`` (the
            fused CPU kernel, or a ``RuntimeError`` saying why it cannot serve) or ``"xla"``
            (the pure JAX drivers).

    Returns:
        ``(state, p)`` with ``p`` a NumPy ``[T, C]`` array of the predictions made before
        each update.

    Raises:
        ValueError: checked on the host before anything runs: shapes that disagree with ``T``
            or the config, labels outside ``[0, num_classes)``, ``learning_rates`` neither a
            scalar nor ``[T]``, a non-positive ``batch_size``, an unknown ``route``.
        TypeError: a state that does not match the config's dtype (see :func:`gln_jax.update`).
        RuntimeError: ``route="kernel"`` where the kernel cannot serve.
    """
    checks.check_state(state, config, function="fit_stream")
    check_route(route)
    targets, learning_rates = check_stream(
        inputs, side_info, targets, learning_rates, batch_size, config, state.step
    )
    total = targets.shape[0]
    batch_size = max(1, min(batch_size, total))  # memory follows the data, not the argument
    dtype = np.dtype(config.dtype)
    columns = [
        (inputs, 0.5, dtype),
        (side_info, 0.0, dtype),
        (targets, 0, np.int32),
        (learning_rates, 0.0, dtype),
    ]
    threads = kernel.threads(config) if kernel_route(route, config, state, batch_size) else 0
    chunk = functools.partial(
        _fit_chunk, config=config, batch_size=batch_size, kernel_threads=threads
    )
    empty = np.zeros((0, config.num_models), dtype)
    return drive_chunks(chunk, state, columns, batch_size, chunk_size, empty)


def drive_chunks(chunk_fn, state, columns, batch_size: int, chunk_size: int, empty: np.ndarray):
    """The host loop of every ``fit_stream``: the chunks of :func:`chunk_spans`, padded.

    Args:
        chunk_fn: jitted ``(state, *columns, mask) -> (state, outputs)`` that donates ``state``.
        state: the caller's state (copied first, so it stays intact).
        columns: ``[(array [T, ...], padding value, dtype)]``, cut into chunks in order.
        batch_size: examples per update (chunk lengths are multiples of it).
        chunk_size: most examples per chunk; padded examples are masked out.
        empty: the result for an empty stream.

    Returns:
        ``(state, outputs)``, the outputs of the ``T`` real examples as one NumPy array.
    """
    total = len(columns[0][0])
    state = jax.tree.map(jnp.copy, state)  # the chunks donate their state; keep the caller's
    outputs = []
    for start, stop, pad in chunk_spans(total, batch_size, chunk_size):
        parts = [take_chunk(array, start, stop, pad, fill, dtype) for array, fill, dtype in columns]
        mask = np.arange(stop - start + pad) < stop - start
        state, out = chunk_fn(state, *parts, mask)
        outputs.append(np.asarray(out)[: stop - start])
    if not outputs:
        return state, empty
    return state, np.concatenate(outputs)
