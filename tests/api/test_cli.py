"""The `gln-jax` command line: help, user errors, and end to end on a small slice of MNIST."""

import json
import os
import subprocess
import sys

import pytest

from gln_jax import GLN
from gln_jax.cli import main
from gln_jax.data import datasets

needs_mnist = pytest.mark.skipif(
    not os.environ.get("GLN_JAX_DATA_DIR"),
    reason="needs MNIST: set GLN_JAX_DATA_DIR to a directory holding the four IDX files",
)
FRAMEWORKS = ("jax", "jaxlib", "torch", "tensorflow", "keras", "flax")


def run_python(code: str, env=None) -> subprocess.CompletedProcess:
    """``python -c code`` with this checkout first on the path."""
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ, **(env or {})),
        timeout=300,
        check=False,
    )


def one_line_error(code: int, err: str) -> str:
    """Checks the shape of a user error (exit 2, one line, no traceback); returns the line."""
    assert code == 2
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("gln-jax: ")
    return lines[0]


def run_main(argv, capsys) -> tuple[int, str, str]:
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors and --help
        code = exit_.code
    out, err = capsys.readouterr()
    return code, out, err


def test_help_shows_every_default_and_imports_no_framework():
    proc = run_python(
        "import json, runpy, sys\n"
        "sys.argv = ['gln-jax', '--help']\n"
        "try:\n"
        "    runpy.run_module('gln_jax', run_name='__main__', alter_sys=True)\n"
        "except SystemExit as exit_:\n"
        "    code = exit_.code\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})\n"
        "print(json.dumps({'code': code, 'loaded': loaded}))\n"
    )
    assert proc.returncode == 0, proc.stderr
    help_text, _, result = proc.stdout.rstrip().rpartition("\n")
    result = json.loads(result)
    assert result == {"code": 0, "loaded": []}
    flat = " ".join(help_text.split())
    for default in (
        "a final 1 appended when missing (default: 4 4 1)",
        "--learning-rate LEARNING_RATE learning rate (default: 0.0001)",
        "--batch-size BATCH_SIZE examples per update (default: 1)",
        "(2**m weight rows) (default: 4)",
        "--seed SEED model and shuffling seed (default: 0)",
        "--backend {jax,numpy,pytorch,tensorflow,tf,torch}",
    ):
        assert default in flat
    assert "$GLN_JAX_DATA_DIR, then the system folder, then the user cache, then a download" in flat
    assert "/usr/share/datasets/fashion-mnist for fashion" in flat
    assert "off for fashion and any other dataset" in flat
    assert "gln-jax evaluate MODEL.npz" in flat and "gln-jax predict MODEL.npz" in flat
    assert "pytorch (alias torch): needs torch: pip install 'gln-jax[torch]'" in flat
    assert "tf (alias tensorflow): needs tensorflow: pip install 'gln-jax[tf]'" in flat
    assert "--train-limit N train on the first N training examples" in flat
    assert "--limit N deprecated: the same as --train-limit N --test-limit N" in flat


def test_version_through_python_m():
    from gln_jax._version import __version__

    proc = subprocess.run(
        [sys.executable, "-m", "gln_jax", "--version"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == f"gln-jax {__version__}"


@pytest.mark.heavy
def test_import_gln_jax_is_lazy():
    proc = run_python(
        "import sys, gln_jax\n"
        f"before = sorted(m for m in sys.modules if m.split('.')[0] in {FRAMEWORKS!r})\n"
        "from gln_jax import GLN, init\n"
        "print(before, 'jax' in sys.modules, GLN.__name__, init is gln_jax.init, "
        "'fit_stream' in dir(gln_jax), sorted(gln_jax.__all__) == gln_jax.__all__)\n"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["[]", "True", "GLN", "True", "True", "True"]


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--backend", "mxnet"], "invalid choice: 'mxnet'"),
        (["--batch-size", "x"], "invalid int value: 'x'"),
        (["--digit", "12"], "--digit must be in 0..9, got 12"),
        (["--limit", "0"], "--limit must be positive, got 0"),
        (["--learning-rate", "-1"], "--learning-rate must be positive and finite, got -1.0"),
        (["--learning-rate", "nan"], "--learning-rate must be positive and finite"),
        (["--layer-sizes", "4", "0", "1"], "bad hyperparameter: --layer-sizes must be positive"),
        (["--context-map-size", "50"], "bad hyperparameter: --context-map-size=50"),
        (["--train-limit", "0"], "--train-limit must be positive, got 0"),
        (["--limit", "5", "--test-limit", "5"], "--limit (deprecated) cannot be combined"),
        (["--recipe", "mnist", "--layer-sizes", "4", "1"], "--recipe mnist sets --layer-sizes;"),
        (["--recipe", "nope"], "--recipe: unknown recipe 'nope'; known: mnist"),
    ],
)
def test_user_errors_are_one_line_exit_2(argv, expected, capsys, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("the data must not be loaded after a bad argument")

    monkeypatch.setattr("gln_jax.utils.get_mnist", no_data)
    code, out, err = run_main([*argv, "--quiet"], capsys)
    assert expected in one_line_error(code, err)
    assert out == ""


def test_save_path_is_checked_before_any_data_or_training(tmp_path, capsys, monkeypatch):
    def no_data(*args, **kwargs):
        raise AssertionError("the data must not be loaded before --save is checked")

    monkeypatch.setattr("gln_jax.utils.get_mnist", no_data)
    a_file = tmp_path / "file.txt"
    a_file.write_text("not a folder")
    for path, expected in (
        (tmp_path / "missing" / "model.npz", "does not exist"),
        (a_file / "model.npz", "does not exist"),
        (tmp_path, "is a directory"),
    ):
        code, out, err = run_main(["--save", str(path), "--quiet"], capsys)
        line = one_line_error(code, err)
        assert line.startswith("gln-jax: --save ") and expected in line
        assert out == ""


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_save_to_a_read_only_folder_fails_before_training(tmp_path, capsys):
    folder = tmp_path / "ro"
    folder.mkdir(mode=0o500)
    code, _, err = run_main(["--save", str(folder / "m.npz"), "--quiet"], capsys)
    assert "is not writable" in one_line_error(code, err)


def test_missing_framework_names_the_extra_without_traceback():
    proc = run_python(
        "import sys\n"
        "sys.modules['torch'] = None  # hide PyTorch, installed or not\n"
        "from gln_jax.cli import main\n"
        "sys.exit(main(['--backend', 'torch', '--quiet']))\n"
    )
    line = one_line_error(proc.returncode, proc.stderr)
    assert line == (
        "gln-jax: backend 'torch' needs torch, which is not installed: pip install 'gln-jax[torch]'"
    )


@pytest.mark.heavy
def test_offline_error_names_the_option_and_the_variable(tmp_path, capsys, monkeypatch):
    empty = tmp_path / "empty"
    empty.mkdir()
    spec = datasets.get_spec("mnist")
    unreachable = (tmp_path / "no-mirror").as_uri() + "/"  # a mirror that holds nothing
    monkeypatch.setitem(datasets.DATASETS, "mnist", spec._replace(mirrors=(unreachable,)))
    monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    code, _, err = run_main(["--data-dir", str(empty), "--quiet"], capsys)
    line = one_line_error(code, err)
    assert line.startswith("gln-jax: offline: could not download train-images-idx3-ubyte.gz")
    assert "pass --data-dir DIR, or set $GLN_JAX_DATA_DIR" in line
    assert "data_dir" not in line


def test_missing_data_dir_is_named_as_the_option(tmp_path, capsys):
    code, _, err = run_main(["--data-dir", str(tmp_path / "nowhere"), "--quiet"], capsys)
    line = one_line_error(code, err)
    assert line.startswith("gln-jax: cannot load data: --data-dir ")
    assert "is not a directory" in line


def majority_percent(limit: int, digit: int | None = None, seed: int = 0) -> float:
    """Accuracy (%) of always answering the commonest label on the command line's test slice.

    The slice is the command line's: ``default_rng(seed)`` permutes the training set, then the
    test set, and ``--limit`` keeps the first ``limit`` test examples.
    """
    import numpy as np

    from gln_jax.data import datasets

    labels = datasets.load_dataset("mnist", download=False).test_labels.astype(np.int64)
    rng = np.random.default_rng(seed)
    rng.permutation(60000)
    labels = labels[rng.permutation(len(labels))[:limit]]
    if digit is not None:
        labels = (labels == digit).astype(np.int64)
    return 100.0 * float(np.mean(labels == np.bincount(labels).argmax()))


@pytest.mark.heavy
@needs_mnist
def test_main_trains_evaluates_and_saves(tmp_path, capsys):
    path = tmp_path / "model.npz"
    code = main(
        ["--limit", "600", "--no-deskew", "--quiet", "--batch-size", "4", "--save", str(path)]
    )
    assert code == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].startswith("GLN(backend='jax'") and lines[0].endswith("step=600)")
    accuracy = float(out.split("test accuracy: ")[1].split("%")[0])
    # Measured 56.2% where the commonest class scores 12.5%.
    assert majority_percent(600) + 30.0 < accuracy <= 100.0
    assert "samples/s" in out and "batch size 4" in out
    model = GLN.load(path)
    assert model.config.num_classes == 10 and model.step == 600


@pytest.mark.heavy
@needs_mnist
def test_main_binary_digit_through_python_m(tmp_path):
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "gln_jax",
            "--digit",
            "3",
            "--limit",
            "500",
            "--no-deskew",
            "--quiet",
            "--learning-rate",
            "1e-3",
            "--no-context-bias",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "task: digit 3 vs rest" in proc.stdout
    assert "num_classes=2" in proc.stdout and "step=500)" in proc.stdout
    accuracy = float(proc.stdout.split("test accuracy: ")[1].split("%")[0])
    # Measured 94.2%; always answering "not 3" scores 90.4% on this slice and one neuron
    # (layer_sizes=[1]) 85.0%.
    assert accuracy > majority_percent(500, digit=3) + 2.0


@pytest.mark.parametrize(("dataset", "deskewed"), [("mnist", True), ("fashion", False)])
def test_deskew_default_is_per_dataset(dataset, deskewed, capsys, monkeypatch):
    seen = {}

    def spy(**kwargs):
        seen.update(kwargs)
        raise OSError("stop here")

    monkeypatch.setattr("gln_jax.utils.get_mnist", spy)
    code, _, err = run_main(["--dataset", dataset, "--quiet"], capsys)
    assert "cannot load data: stop here" in one_line_error(code, err)
    assert seen["deskewed"] is deskewed and seen["dataset"] == dataset


def test_model_errors_name_the_file_and_the_width(tmp_path, capsys):
    import numpy as np

    missing = tmp_path / "missing.npz"
    for argv in (
        ["evaluate", str(missing)],
        ["predict", str(missing), "--input", str(tmp_path / "x.npy")],
    ):
        code, _, err = run_main(argv, capsys)
        assert f"model file {str(missing)!r} does not exist" in one_line_error(code, err)
    path = tmp_path / "model.npz"
    GLN("jax", [2, 1], 784, num_classes=10).save(path)
    narrow = tmp_path / "narrow.npy"
    np.save(narrow, np.zeros((3, 10), np.float32))
    code, _, err = run_main(["predict", str(path), "--input", str(narrow)], capsys)
    line = one_line_error(code, err)
    assert f"--input {str(narrow)!r} holds an array of shape (3, 10)" in line
    assert f"model {str(path)!r} expects [B, 784]" in line
    code, _, err = run_main(["evaluate", str(path), "--digit", "3"], capsys)
    assert "has 10 classes: leave out --digit" in one_line_error(code, err)


def copy_files(source, target, names):
    target.mkdir()
    for name in names:
        for candidate in (name, name + ".gz"):
            if (source / candidate).is_file():
                (target / candidate).symlink_to(source / candidate)
    return target


@pytest.mark.heavy
@needs_mnist
def test_data_errors_name_the_missing_or_foreign_file(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    mnist = Path(os.environ["GLN_JAX_DATA_DIR"])
    unreachable = ((tmp_path / "no-mirror").as_uri() + "/",)
    for name in ("mnist", "fashion"):
        spec = datasets.get_spec(name)
        empty = str(tmp_path / f"no-system-{name}")
        monkeypatch.setitem(
            datasets.DATASETS, name, spec._replace(mirrors=unreachable, system_dir=empty)
        )
    monkeypatch.delenv(datasets.ENV_DATA_DIR)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    files = datasets.get_spec("mnist").files
    three = copy_files(mnist, tmp_path / "three", [f.name for f in files[:3]])
    code, _, err = run_main(["--data-dir", str(three), "--quiet"], capsys)
    line = one_line_error(code, err)
    assert (
        f"t10k-labels-idx1-ubyte[.gz] of dataset 'mnist' (MD5 {files[3].md5} uncompressed) "
        f"is not in --data-dir {three}"
    ) in line
    code, _, err = run_main(["--dataset", "fashion", "--data-dir", str(mnist), "--quiet"], capsys)
    line = one_line_error(code, err)
    fashion = datasets.get_spec("fashion").train_images
    assert f"train-images-idx3-ubyte[.gz] of dataset 'fashion' (MD5 {fashion.md5}" in line
    assert "holds dataset 'mnist''s train-images-idx3-ubyte" in line and "not 'fashion''s" in line


FASHION = "/usr/share/datasets/fashion-mnist"


@pytest.mark.heavy
@pytest.mark.skipif(
    not os.path.isdir(FASHION), reason="needs apt-get install dataset-fashion-mnist"
)
def test_fashion_is_found_in_its_system_folder(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    spec = datasets.get_spec("fashion")
    system = copy_files(Path(FASHION), tmp_path / "system", [f.name for f in spec.files])
    unreachable = ((tmp_path / "no-mirror").as_uri() + "/",)
    monkeypatch.setitem(
        datasets.DATASETS, "fashion", spec._replace(mirrors=unreachable, system_dir=str(system))
    )
    monkeypatch.delenv(datasets.ENV_DATA_DIR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    argv = ["--dataset", "fashion", "--train-limit", "200", "--test-limit", "100", "--quiet"]
    code, out, err = run_main([*argv, "--layer-sizes", "2", "1"], capsys)
    assert code == 0, err
    assert "dataset: fashion (raw)" in out


@pytest.mark.heavy
@needs_mnist
def test_train_then_evaluate_and_predict_a_saved_model(tmp_path, capsys):
    import numpy as np

    path = tmp_path / "model.npz"
    common = ["--no-deskew", "--quiet", "--seed", "1"]
    code, out, err = run_main(
        [*common, "--train-limit", "400", "--test-limit", "300", "--save", str(path)], capsys
    )
    assert code == 0, err
    trained = out.split("test accuracy: ")[1].split("%")[0]
    assert "step=400)" in out
    code, out, err = run_main(["evaluate", str(path), *common, "--test-limit", "300"], capsys)
    assert code == 0, err
    assert f"test accuracy: {trained}% (300 examples)" in out  # the same slice as train's
    X = datasets.load_dataset("mnist", download=False).test_images[:5].reshape(5, -1)
    inputs, labels, probs = tmp_path / "x.npy", tmp_path / "labels.npy", tmp_path / "p.npy"
    np.save(inputs, X.astype(np.float32) / 255)
    model = GLN.load(path)
    for argv, output, expected in (
        ([], labels, model.predict(np.load(inputs))),
        (["--probs"], probs, model.predict(np.load(inputs), return_probs=True)),
    ):
        code, _, err = run_main(
            ["predict", str(path), "--input", str(inputs), "--output", str(output), *argv],
            capsys,
        )
        assert code == 0, err
        np.testing.assert_allclose(np.load(output), expected, rtol=1e-6)
    assert np.load(probs).shape == (5, 10)
    code, out, _ = run_main(["predict", str(path), "--input", str(inputs)], capsys)
    assert code == 0 and out.split() == [str(c) for c in np.load(labels)]
