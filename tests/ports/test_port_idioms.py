"""Each port is idiomatic where users touch it.

NumPy: keeps the dtype it is given, never aliases or writes into the caller's arrays.
PyTorch: the model's ``module`` is an ``nn.Module`` whose state is buffers (``state_dict``,
``.to``, ``.double()``, forwarded by the model too), no autograd. TensorFlow: its ``module`` is
a ``tf.Module`` of variables whose ``tf.function``\\ s are traced once.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

import gln_jax
from gln_jax import make_config

from .port_harness import BY_NAME, Case, clean_examples, params, reference_state

CONFIG = make_config([3, 2], 5, context_map_size=2, num_classes=3, base_prediction_size=4)
CASE = Case(CONFIG, 11)


def _data(count: int, seed: int = 0, dtype="float32"):
    state = reference_state(CASE)
    rng = np.random.default_rng(seed)
    side = clean_examples(state, rng, count, low=0.0, high=1.0, dtype=dtype)
    inputs = rng.random((count, 4)).astype(dtype)
    return inputs, side, rng.integers(0, 3, count).astype(np.int32)


def _model_data(count: int, seed: int = 0):
    """Data clean of the hyperplanes of ``GLN(**MODEL, seed=5)`` (the facade's models)."""
    model = gln_jax.GLN("numpy", **MODEL, seed=5)
    rng = np.random.default_rng(seed)
    x = clean_examples(model.reference_state(), rng, count, low=0.0, high=1.0)
    return x, rng.integers(0, 3, count)


MODEL = dict(layer_sizes=[3, 2], input_size=5, context_map_size=2, num_classes=3)

numpy_only = params([BY_NAME["numpy"]])
torch_only = params([BY_NAME["pytorch"]])
tf_only = params([BY_NAME["tf"]])


# --------------------------------------------------------------------------- NumPy


@pytest.mark.parametrize("backend", numpy_only)
def test_numpy_keeps_float32_whatever_it_is_given(backend):
    import gln_numpy

    state = gln_numpy.from_reference(reference_state(CASE))
    inputs, side, labels = _data(8)
    wide = (inputs.astype(np.float64), side.astype(np.float64))  # float64 arguments
    rates = np.full(8, 0.1)  # float64 rates
    outputs = [
        gln_numpy.apply(state, wide[0][0], wide[1][0], config=CONFIG),
        gln_numpy.batch_apply(state, *wide, config=CONFIG),
        gln_numpy.base_predictions(wide[0], config=CONFIG),
        *gln_numpy.update(state, wide[0][0], wide[1][0], 1, 0.1, config=CONFIG),
        *gln_numpy.batch_update(state, *wide, labels, rates, config=CONFIG),
        *gln_numpy.fit_stream(state, *wide, labels, rates, config=CONFIG, batch_size=3),
    ]
    for out in outputs:
        leaves = (
            [out]
            if isinstance(out, np.ndarray)
            else [leaf for layer in out.layers for leaf in layer]
        )
        for leaf in leaves:
            assert leaf.dtype == np.float32


@pytest.mark.parametrize("backend", numpy_only)
def test_numpy_never_aliases_or_writes_the_callers_arrays(backend):
    import gln_numpy

    state = gln_numpy.from_reference(reference_state(CASE))
    before = gln_numpy.to_reference(state)
    inputs, side, labels = _data(12)
    rates = np.full(12, 0.2, np.float32)
    given = [a.copy() for a in (inputs, side, labels, rates)]
    for a in (inputs, side, labels, rates):
        a.flags.writeable = False  # a write into them would raise
    results = [
        gln_numpy.update(state, inputs[0], side[0], labels[0], 0.2, config=CONFIG),
        gln_numpy.batch_update(state, inputs, side, labels, rates, config=CONFIG),
        gln_numpy.scan_update(state, inputs, side, labels, rates, config=CONFIG),
        gln_numpy.fit_stream(state, inputs, side, labels, rates, config=CONFIG, batch_size=5),
    ]
    for a, b in zip((inputs, side, labels, rates), given, strict=True):
        np.testing.assert_array_equal(a, b)
    originals = [leaf for layer in state.layers for leaf in layer] + [inputs, side, rates]
    for new_state, p in results:
        fresh = [leaf for layer in new_state.layers for leaf in layer] + [p, new_state.step]
        for leaf in fresh:
            assert leaf.flags.writeable
            assert not any(np.shares_memory(leaf, old) for old in originals)
    after = gln_numpy.to_reference(state)
    for a, b in zip(after.layers, before.layers, strict=True):
        for x, y in zip(a, b, strict=True):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("backend", numpy_only)
def test_numpy_float64_state_stays_float64(backend, x64):
    import gln_numpy

    config = CONFIG._replace(dtype="float64")
    state = gln_numpy.from_reference(reference_state(Case(config, 11)))
    inputs, side, labels = _data(6, dtype="float32")  # float32 arguments
    new_state, p = gln_numpy.batch_update(
        state, inputs, side, labels, np.full(6, 0.1, np.float32), config=config
    )
    assert p.dtype == np.float64
    assert all(leaf.dtype == np.float64 for layer in new_state.layers for leaf in layer)


def _is_guard(node) -> bool:
    """``with np.errstate(invalid=...)`` (or ``all=...``)."""
    return isinstance(node, ast.With) and any(
        isinstance(item.context_expr, ast.Call)
        and ast.unparse(item.context_expr.func).endswith("errstate")
        and any(kw.arg in ("invalid", "all") for kw in item.context_expr.keywords)
        for item in node.items
    )


def _unguarded(tree, is_target) -> list[tuple[str, int]]:
    """``(enclosing function, line)`` of every node for which ``is_target`` holds that sits
    outside an ``np.errstate(invalid=...)`` block."""
    found = []

    def visit(node, function: str, inside: bool) -> None:
        if isinstance(node, ast.FunctionDef):
            function = node.name
        inside = inside or _is_guard(node)
        if not inside and is_target(node):
            found.append((function, node.lineno))
        for child in ast.iter_child_nodes(node):
            visit(child, function, inside)

    visit(tree, "<module>", False)
    return found


def _is_product(node) -> bool:
    if isinstance(node, ast.BinOp):
        return isinstance(node.op, ast.MatMult)
    return isinstance(node, ast.Call) and ast.unparse(node.func) in ("np.matmul", "np.dot")


def test_numpy_products_go_through_the_invalid_flag_guard():
    """OpenBLAS can leave FE_INVALID set after a product of finite operands (on some CPUs
    only), which NumPy reports as a ``RuntimeWarning``. Every product of the NumPy port goes
    through ``numerics.matmul`` or sits in an ``np.errstate(invalid=...)`` block, in its own
    function or, for a per-step helper kept free of the guard's cost, at every call of it."""
    package = Path(__file__).resolve().parents[2] / "ports" / "gln_numpy"
    trees = {
        path.name: ast.parse(path.read_text(), filename=str(path))
        for path in sorted(package.glob("*.py"))
        if path.name != "numerics.py"  # where the guard itself is written
    }
    assert "network.py" in trees
    helpers = {}  # function -> its unguarded products
    for name, tree in trees.items():
        for function, line in _unguarded(tree, _is_product):
            helpers.setdefault(function, []).append(f"{name}:{line}")
    offenders = [
        where for function, lines in helpers.items() if function == "<module>" for where in lines
    ]

    def calls(function):
        def is_call(node) -> bool:
            return isinstance(node, ast.Call) and ast.unparse(node.func).split(".")[-1] == function

        return is_call

    for function, lines in helpers.items():
        everywhere = [n for tree in trees.values() for n in ast.walk(tree) if calls(function)(n)]
        sites = [
            (name, site)
            for name, tree in trees.items()
            for site in _unguarded(tree, calls(function))
        ]
        if not everywhere:  # an entry point: nothing guards it
            offenders += lines
        else:  # a helper: guarded only where every call of it is
            offenders += [
                f"{where} (via {name}:{line})" for where in lines for name, (_, line) in sites
            ]
    assert not offenders, f"unguarded products (use numerics.matmul): {offenders}"


# --------------------------------------------------------------------------- PyTorch


@pytest.mark.parametrize("backend", torch_only)
def test_torch_model_is_a_module_of_buffers(backend):
    import gln_torch
    import torch

    model = gln_torch.GLN(**MODEL, seed=5)
    assert isinstance(model.module, torch.nn.Module)
    assert (
        list(model.module.parameters()) == []
    )  # learned without gradients: buffers, not parameters
    keys = set(model.state_dict())
    expected = {"step"} | {
        f"layers.{i}.{field}" for i in range(3) for field in gln_jax.LayerState._fields
    }
    assert keys == expected
    reference = model.reference_state()
    np.testing.assert_array_equal(
        model.state_dict()["layers.1.weights"].cpu().numpy(), reference.layers[1].weights
    )
    # state_dict round trip into another model (another seed: other gating)
    x, y = _model_data(40)
    model.fit(x, y)
    other = gln_torch.GLN(**MODEL, seed=6)
    other.load_state_dict(model.state_dict())
    torch.testing.assert_close(
        other.predict(x, return_probs=True), model.predict(x, return_probs=True)
    )
    assert other.step == 40 and int(other.module.step) == 40


@pytest.mark.parametrize("backend", torch_only)
def test_torch_double_moves_the_model_to_float64(backend, x64):
    import gln_torch
    import torch

    model = gln_torch.GLN(**MODEL, seed=5)
    x, y = _model_data(30)
    model.fit(x[:20], y[:20])
    state32 = model.reference_state()
    assert model.double() is model
    assert model.config.dtype == "float64"
    assert all(b.dtype == torch.float64 for n, b in model.module.named_buffers() if n != "step")
    assert model.module.step.dtype == torch.int32
    probs = model.predict(x[20:], return_probs=True)
    assert probs.dtype == torch.float64
    # the float64 reference on the same (widened) weights
    config = model.config
    wide = gln_jax.GLNState(
        layers=tuple(
            gln_jax.LayerState(*(np.asarray(a, np.float64) for a in layer))
            for layer in state32.layers
        ),
        step=state32.step,
    )
    expected = gln_jax.batch_apply(
        wide, np.clip(x[20:], 0, 1).astype(np.float64), x[20:].astype(np.float64), config=config
    )
    np.testing.assert_allclose(probs.cpu().numpy(), np.asarray(expected), rtol=1e-12, atol=1e-12)
    model.float()
    assert model.config.dtype == "float32"
    with pytest.raises(TypeError, match="float16"):
        model.to(torch.float16)
    assert model.module.layers[0].weights.dtype == torch.float32  # refused before any change


@pytest.mark.parametrize("backend", torch_only)
def test_torch_runs_on_the_device_of_its_buffers_without_autograd(backend):
    import gln_torch
    import torch

    model = gln_torch.GLN(**MODEL, seed=5).to("cpu")
    assert model.device.type == "cpu"
    x, y = _model_data(20)
    with torch.enable_grad():
        probs = model.predict(torch.tensor(x, requires_grad=True), return_probs=True)
        model.predict(torch.tensor(x), target=torch.tensor(y))
    assert probs.grad_fn is None and not probs.requires_grad
    assert all(not b.requires_grad for b in model.module.buffers())
    assert probs.device.type == "cpu"
    if torch.cuda.is_available():  # the same model on the accelerator answers the same
        cuda = gln_torch.GLN(**MODEL, seed=5).to("cuda")
        cpu = gln_torch.GLN(**MODEL, seed=5).to("cpu")
        got = cuda.fit(x, y)
        assert got.device.type == "cuda"
        torch.testing.assert_close(got.cpu(), cpu.fit(x, y))


@pytest.mark.parametrize("backend", torch_only)
def test_torch_functional_api_leaves_its_arguments_alone(backend):
    import gln_torch
    import torch

    state = gln_torch.from_reference(reference_state(CASE), device="cpu")
    inputs, side, labels = _data(10)
    before = [t.clone() for layer in state.layers for t in layer]
    new_state, p = gln_torch.batch_update(
        state,
        torch.tensor(inputs),
        torch.tensor(side),
        torch.tensor(labels),
        torch.full((10,), 0.5),
        config=CONFIG,
    )
    for old, new in zip(before, [t for layer in state.layers for t in layer], strict=True):
        assert torch.equal(old, new)
    for leaf in [t for layer in new_state.layers for t in layer]:
        assert all(leaf.data_ptr() != t.data_ptr() for layer in state.layers for t in layer)


# --------------------------------------------------------------------------- TensorFlow


@pytest.mark.parametrize("backend", tf_only)
def test_tf_functions_are_traced_once(backend):
    import gln_tf
    import tensorflow as tf
    from gln_tf.module import compiled

    model = gln_tf.GLN(**MODEL, seed=5)
    x, y = _model_data(60)
    for count in (7, 13, 60):  # new lengths, new batch sizes: no new traces
        model.predict(x[:count])
        model.predict(x[:count], target=y[:count])
        model.fit(x[:count], y[:count])
        model.fit(x[:count], y[:count], batch_size=4)
    gln_tf.GLN(**MODEL, seed=6).fit(x, y)  # a second model of the same config
    functions = compiled(model.config).functions()
    assert {name: f.experimental_get_tracing_count() for name, f in functions.items()} == {
        name: 1 for name in functions
    }
    assert isinstance(model.module, tf.Module)
    assert model.module.trainable_variables == ()
    names = {v.name for v in model.module.variables}
    assert any("weights" in n for n in names) and any("hyperplanes" in n for n in names)


@pytest.mark.parametrize("backend", tf_only)
def test_tf_functional_scans_are_traced_once_per_config(backend):
    import gln_tf
    from gln_tf.scan import _scans

    state = gln_tf.from_reference(reference_state(CASE))
    inputs, side, labels = _data(30)
    rates = np.full(30, 0.1, np.float32)
    for count in (5, 11, 30):
        gln_tf.scan_update(
            state, inputs[:count], side[:count], labels[:count], rates[:count], config=CONFIG
        )
        gln_tf.fit_stream(
            state,
            inputs[:count],
            side[:count],
            labels[:count],
            rates[:count],
            config=CONFIG,
            batch_size=4,
        )
    online, batched = _scans(CONFIG)
    assert online.experimental_get_tracing_count() == 1
    assert batched.experimental_get_tracing_count() == 1


@pytest.mark.parametrize("backend", tf_only)
def test_tf_checkpoint_of_the_module_round_trips(backend, tmp_path):
    import gln_tf
    import tensorflow as tf

    model = gln_tf.GLN(**MODEL, seed=5)
    x, y = _model_data(30)
    model.fit(x, y)
    path = tf.train.Checkpoint(model=model.module).write(str(tmp_path / "ckpt"))
    other = gln_tf.GLN(**MODEL, seed=6)  # another seed: other gating, all of it restored
    assert not np.array_equal(
        other.reference_state().layers[0].hyperplanes, model.reference_state().layers[0].hyperplanes
    )
    tf.train.Checkpoint(model=other.module).read(path).assert_consumed()
    np.testing.assert_array_equal(
        other.predict(x, return_probs=True).numpy(), model.predict(x, return_probs=True).numpy()
    )
    assert other.step == 30 and int(other.module.step.numpy()) == 30
