"""User helpers in the spirit of the original pygln utilities (a compatibility shim).

``get_mnist`` returns the arrays of the original README flow; ``deskew`` straightens slanted
digits with the moment-based shear of the original utilities; ``evaluate_mnist`` trains a model
online through ``model.predict(batch, target=...)`` and reports its test accuracy;
``learning_curve`` measures test accuracy along one online pass, at the example counts
``log_spaced_points`` chooses. They live in
:mod:`gln_jax.data.mnist`, :mod:`gln_jax.data.deskew` and :mod:`gln_jax.api.evaluation`.

Importing this module stays cheap: SciPy, tqdm and filelock are imported where they are used.
"""

from gln_jax.api.evaluation import evaluate_mnist as evaluate_mnist
from gln_jax.api.evaluation import learning_curve as learning_curve
from gln_jax.api.evaluation import log_spaced_points as log_spaced_points
from gln_jax.data.deskew import deskew as deskew
from gln_jax.data.mnist import get_mnist as get_mnist

__all__ = ["deskew", "evaluate_mnist", "get_mnist", "learning_curve", "log_spaced_points"]
