"""Deskewing: the moment-based shear of the original pygln utilities, vectorised."""

from __future__ import annotations

import numpy as np

DESKEW_VERSION = 1  # part of the cache key: bump it whenever deskew's output changes


def deskew(images, *, progress: bool = False) -> np.ndarray:
    """Straightens images by the shear that makes their second-order moments upright.

    Per image, with row coordinate ``r`` and column coordinate ``c`` weighted by intensity:
    centre of mass ``mu``, ``alpha = cov(r, c) / var(r)``, ``affine = [[1, 0], [alpha, 1]]`` and
    ``offset = mu - affine @ (shape / 2)``; ``scipy.ndimage.affine_transform`` (cubic spline,
    zero outside) resamples the image, which is then clipped into ``[0, 1]``. The result is
    upright and centred on the image's centre. The moments of the whole batch are computed at
    once; only the resampling loops over images. Blank images are returned unchanged.

    Args:
        images: ``[N, H, W]`` (or one ``[H, W]``) intensities in ``[0, 1]``.
        progress: show a tqdm progress bar.

    Returns:
        float32 array of the same shape, in ``[0, 1]``.

    Example:
        >>> straight = deskew(X_train.reshape(-1, 28, 28)).reshape(-1, 784)  # doctest: +SKIP
    """
    from scipy import ndimage
    from tqdm import tqdm

    x = np.asarray(images, dtype=np.float64)
    single = x.ndim == 2
    if single:
        x = x[None]
    if x.ndim != 3:
        raise ValueError(f"images must have shape [N, H, W] or [H, W], got {x.shape}")
    matrices, offsets, blank = _shear_parameters(x)
    out = np.empty(x.shape, np.float32)
    for n in tqdm(range(x.shape[0]), desc="deskew", unit="img", disable=not progress):
        if blank[n]:
            out[n] = x[n]
        else:
            ndimage.affine_transform(x[n], matrices[n], offset=offsets[n], output=out[n])
    np.clip(out, 0.0, 1.0, out=out)
    return out[0] if single else out


def _shear_parameters(x: np.ndarray):
    """Vectorised moments: ``[N, 2, 2]`` matrices, ``[N, 2]`` offsets, ``[N]`` blank flags."""
    _, height, width = x.shape
    rows = np.arange(height, dtype=np.float64)
    cols = np.arange(width, dtype=np.float64)
    row_mass, col_mass = x.sum(axis=2), x.sum(axis=1)  # [N, H], [N, W]
    mass = row_mass.sum(axis=1)
    blank = mass <= 0
    mass = np.where(blank, 1.0, mass)
    # OpenBLAS may flag "invalid" after products of finite operands (numpy/numpy#24067).
    with np.errstate(invalid="ignore"):
        mu_r, mu_c = row_mass @ rows / mass, col_mass @ cols / mass
    d_r, d_c = rows[None, :] - mu_r[:, None], cols[None, :] - mu_c[:, None]
    var_r = (row_mass * d_r**2).sum(axis=1) / mass
    cov = np.einsum("nhw,nh,nw->n", x, d_r, d_c) / mass
    alpha = np.where(var_r > 0, cov / np.where(var_r > 0, var_r, 1.0), 0.0)
    matrices = np.zeros((x.shape[0], 2, 2))
    matrices[:, 0, 0] = matrices[:, 1, 1] = 1.0
    matrices[:, 1, 0] = alpha
    centre = np.array([height / 2.0, width / 2.0])
    with np.errstate(invalid="ignore"):
        offsets = np.stack([mu_r, mu_c], axis=1) - matrices @ centre
    return matrices, offsets, blank
