"""HED colour deconvolution against scikit-image (random images and its IHC image), round trips, the naive
per-pixel definition, and the HED stain jitter."""

import numpy as np
import pytest
import skimage.data
import torch
from skimage.color import hed2rgb, rgb2hed

from ssl_medical.transforms.stain import EPS, HED_FROM_RGB, RGB_FROM_HED, HEDJitter, hed_to_rgb, rgb_to_hed


def to_torch(a: np.ndarray) -> torch.Tensor:
    """(H, W, 3) or (B, H, W, 3) -> (3, H, W) or (B, 3, H, W)."""
    return torch.from_numpy(np.moveaxis(a, -1, -3).copy())


def to_numpy(x: torch.Tensor) -> np.ndarray:
    return np.moveaxis(x.numpy(), -3, -1)


def ihc() -> np.ndarray:
    return skimage.data.immunohistochemistry()[:128, :128] / 255.0


def test_matrix_is_scikit_images():
    from skimage.color import colorconv

    np.testing.assert_allclose(RGB_FROM_HED.numpy(), colorconv.rgb_from_hed)
    np.testing.assert_allclose(HED_FROM_RGB.numpy(), colorconv.hed_from_rgb, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("image", ["random", "ihc", "dark"])
def test_rgb_to_hed_and_back_equal_scikit_image(image):
    rng = np.random.default_rng(0)
    if image == "random":
        a = rng.random((2, 24, 20, 3))
    elif image == "dark":  # zeros and values below the 1e-6 clamp
        a = rng.random((1, 8, 8, 3)) * 1e-5
        a[0, 0, 0] = 0.0
    else:
        a = ihc()[None]
    x = to_torch(a)
    hed = rgb_to_hed(x)
    ref = np.stack([rgb2hed(im) for im in a])
    np.testing.assert_allclose(to_numpy(hed), ref, rtol=1e-10, atol=1e-12)
    back = hed_to_rgb(hed)
    np.testing.assert_allclose(to_numpy(back), np.stack([hed2rgb(h) for h in ref]), rtol=1e-10, atol=1e-12)
    # unbatched and float32 inputs give the same values
    np.testing.assert_allclose(to_numpy(rgb_to_hed(x[0])), ref[0], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_numpy(rgb_to_hed(x.float())), ref, rtol=1e-4, atol=1e-5)


def test_matches_a_naive_per_pixel_definition():
    """Ruifrok & Johnston as scikit-image writes it, one pixel at a time in plain Python floats."""
    rng = np.random.default_rng(1)
    a = rng.random((5, 4, 3))
    hed = to_numpy(rgb_to_hed(to_torch(a)))
    m = np.linalg.inv(np.array([[0.65, 0.70, 0.29], [0.07, 0.99, 0.11], [0.27, 0.57, 0.78]]))
    for i in range(5):
        for j in range(4):
            od = [np.log(max(v, EPS)) / np.log(EPS) for v in a[i, j]]
            s = [max(0.0, sum(od[c] * m[c, k] for c in range(3))) for k in range(3)]
            np.testing.assert_allclose(hed[i, j], s, rtol=1e-10, atol=1e-12)


def test_round_trips():
    # stains -> RGB -> stains is the identity for non-negative stains inside the RGB gamut
    s = torch.rand(2, 3, 16, 16, dtype=torch.float64) * 0.05
    torch.testing.assert_close(rgb_to_hed(hed_to_rgb(s)), s, rtol=1e-9, atol=1e-12)
    # RGB -> stains -> RGB is the identity where no clamp acts (RGB made from non-negative stains)
    x = hed_to_rgb(torch.rand(1, 3, 16, 16, dtype=torch.float64) * 0.1)
    torch.testing.assert_close(hed_to_rgb(rgb_to_hed(x)), x, rtol=1e-9, atol=1e-12)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\(3, H, W\)"):
        rgb_to_hed(torch.rand(4, 4, 3))
    with pytest.raises(ValueError, match="float"):
        rgb_to_hed(torch.zeros(3, 4, 4, dtype=torch.uint8))
    with pytest.raises(ValueError, match="sigma"):
        HEDJitter(sigma=1.5)


def test_jitter_zero_is_identity_and_output_in_range():
    x = hed_to_rgb(torch.rand(4, 3, 16, 16) * 0.1)  # in-gamut RGB: the round trip is exact there
    torch.testing.assert_close(HEDJitter(0.0, 0.0)(x), x, rtol=1e-5, atol=1e-6)
    y = to_torch(ihc()).float()
    torch.testing.assert_close(HEDJitter(0.0, 0.0)(y), hed_to_rgb(rgb_to_hed(y)))
    strong = HEDJitter(0.5, 0.2)(to_torch(ihc()[None].repeat(6, 0)).float(), torch.Generator().manual_seed(0))
    assert strong.shape == (6, 3, 128, 128) and strong.min() >= 0 and strong.max() <= 1
    assert (strong[0] - strong[1]).abs().mean() > 0.01  # each tile its own draw


def test_jitter_matches_scikit_image_and_draw_ranges():
    g = torch.Generator().manual_seed(3)
    jit = HEDJitter(sigma=0.2, bias=0.03)
    a = ihc()
    alpha, beta = jit.draw(2000, g)
    assert alpha.shape == beta.shape == (2000, 3)
    assert 0.8 <= alpha.min() and alpha.max() <= 1.2 and -0.03 <= beta.min() and beta.max() <= 0.03
    assert abs(float(alpha.mean()) - 1) < 0.01 and abs(float(beta.mean())) < 0.002
    # the same draw from the same seed, applied as scikit-image would
    out = jit(to_torch(a), torch.Generator().manual_seed(5))
    alpha, beta = jit.draw(1, torch.Generator().manual_seed(5))
    ref = hed2rgb(rgb2hed(a) * alpha[0].numpy() + beta[0].numpy())
    np.testing.assert_allclose(to_numpy(out), ref, rtol=1e-9, atol=1e-12)
