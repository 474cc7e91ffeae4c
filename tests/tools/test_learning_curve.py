"""The learning-curve tool: its models and its table (the training is api.evaluation's)."""

import learning_curve
import pytest


def test_models_are_the_readme_defaults_and_the_recipe():
    defaults = learning_curve.make_model("defaults", 16, seed=0)
    assert defaults.config.num_classes == 10 and defaults.side_info_transform is None
    assert [layer.weights.shape[1] for layer in defaults.state.layers] == [4, 4, 1]
    recipe = learning_curve.make_model("recipe", 16, seed=0)
    assert recipe.side_info_transform.kind == "center" and recipe.config.context_map_size == 6
    assert recipe.config.side_info_size == 16
    with pytest.raises(ValueError, match="unknown model 'wide'"):
        learning_curve.make_model("wide", 16, seed=0)


def test_render_one_row_per_point():
    result = {
        "points": [100, 1000, 60000],
        "curves": {
            "defaults": {"accuracy": [60.0, 85.5, 94.53], "seconds": 1.0},
            "recipe": {"accuracy": [55.25, 88.0, 96.77], "seconds": 2.0},
        },
    }
    assert learning_curve.render(result).splitlines() == [
        "| examples seen | defaults `[4, 4, 1]` (%) | `recipes.mnist()` (%) |",
        "|---:|---:|---:|",
        "| 100 | 60.00 | 55.25 |",
        "| 1,000 | 85.50 | 88.00 |",
        "| 60,000 | 94.53 | 96.77 |",
    ]
