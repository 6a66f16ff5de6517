"""The DDIM sampler: schedule maths, pinned numbers with a dummy model, inpainting, numpy == torch."""

from __future__ import annotations

import math

import numpy as np
import pytest

from runtime.model.sampling import Schedule, guided, q_sample, sample_ddim, sample_ddpm


def test_cosine_schedule_shape() -> None:
    abar = Schedule().alphas_cumprod
    assert abar.shape == (1000,)
    assert np.all(np.diff(abar) < 0), "alpha_bar must fall monotonically with the step"
    assert abar[0] == pytest.approx(0.99996, abs=1e-5)
    assert abar[-1] < 1e-8
    # Nichol & Dhariwal: alpha_bar(t) = f(t)/f(0), f(t) = cos^2((t/T + s)/(1 + s) * pi/2), here at t = 500
    f = lambda u: math.cos((u + 0.008) / 1.008 * math.pi / 2) ** 2  # noqa: E731
    assert abar[499] == pytest.approx(f(0.5) / f(0.0), rel=1e-6)


def test_timesteps() -> None:
    s = Schedule()
    assert s.timesteps(1) == [999]
    assert s.timesteps(4) == [999, 749, 499, 249]
    assert len(set(s.timesteps(8))) == 8
    with pytest.raises(ValueError, match="1..1000"):
        s.timesteps(0)


@pytest.mark.parametrize(("k", "expected"), [(1, 0.5), (2, 0.5313996006155768), (4, 0.4436678981894607)])
def test_ddim_pinned_with_dummy_model(k: int, expected: float) -> None:
    """x0 = 0.5 x_t, noise of ones: the numbers follow from the DDIM update; pinned (K=2 checked by hand)."""
    x = np.ones((1, 2, 3))
    out = sample_ddim(lambda x, t: 0.5 * x, x, Schedule(), k)
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_perfect_denoiser_returns_its_answer() -> None:
    target = np.random.default_rng(0).standard_normal((2, 5, 4))
    noise = np.random.default_rng(1).standard_normal((2, 5, 4))
    for k in (1, 3, 8):
        np.testing.assert_allclose(sample_ddim(lambda x, t: target, noise, Schedule(), k), target)


def test_context_is_inpainted_exactly() -> None:
    rng = np.random.default_rng(0)
    noise, context = rng.standard_normal((1, 10, 3)), rng.standard_normal((1, 10, 3))
    mask = np.zeros((1, 10, 1))
    mask[:, :4] = 1
    out = sample_ddim(lambda x, t: 0.3 * x, noise, Schedule(), 4, context=context, context_mask=mask)
    np.testing.assert_array_equal(out[:, :4], context[:, :4])
    assert not np.allclose(out[:, 4:], context[:, 4:])


def test_steps_seen_by_the_model() -> None:
    seen = []
    sample_ddim(lambda x, t: seen.append(t) or x, np.zeros((1, 1, 1)), Schedule(), 4)
    assert seen == [999, 749, 499, 249]


def test_numpy_and_torch_run_the_same_loop() -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    noise = rng.standard_normal((2, 7, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3)).astype(np.float32)
    a = sample_ddim(lambda x, t: np.tanh(x @ w) * (t / 1000), noise, Schedule(), 4)
    b = sample_ddim(
        lambda x, t: torch.tanh(x @ torch.from_numpy(w)) * (t / 1000), torch.from_numpy(noise), Schedule(), 4
    )
    np.testing.assert_allclose(a, b.numpy(), atol=1e-6)


def test_guidance_and_q_sample() -> None:
    cond, uncond = (lambda x, t: x + 1.0), (lambda x, t: x)
    np.testing.assert_allclose(guided(cond, uncond, 3.0)(np.zeros(2), 5), 3.0)
    np.testing.assert_allclose(guided(cond, uncond, 1.0)(np.zeros(2), 5), 1.0)
    np.testing.assert_allclose(q_sample(np.full(3, 2.0), np.ones(3), 0.25), 0.5 * 2 + math.sqrt(0.75))


def test_ddpm_reference_is_seeded() -> None:
    noise = np.ones((1, 3, 2), np.float32)
    a = sample_ddpm(lambda x, t: 0.9 * x, noise, Schedule(), 50, np.random.default_rng(3))
    b = sample_ddpm(lambda x, t: 0.9 * x, noise, Schedule(), 50, np.random.default_rng(3))
    np.testing.assert_array_equal(a, b)
    assert a.shape == noise.shape and np.all(np.isfinite(a))
