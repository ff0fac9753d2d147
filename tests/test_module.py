"""The torch module: data transforms, Jacobians, shapes and scoring."""

import math

import numpy as np
import pytest
import torch
from torch.distributions import kl_divergence

from skvae._bounds import observed_log_prob
from skvae._module import MAX_LATENT_LOC, MAX_LATENT_SCALE, MIN_LATENT_SCALE, VAEModule


def _module(shift=None, scale=None, low=None, high=None, **kwargs):
    """A module whose data map is the logit map of (low, high), if given, then standardisation."""
    torch.manual_seed(0)
    steps = [] if low is None else [("bounds", {"low": low, "high": high})]
    steps += [] if shift is None else [("standardise", {"loc": shift, "scale": scale})]
    defaults = dict(n_features=3, n_components=2, hidden_layer_sizes=(8,), activation="tanh", data_map=steps)
    return VAEModule(**{**defaults, **kwargs})


def test_preprocess_inverts_postprocess_with_bounds():
    module = _module(shift=[0.1, -0.2, 0.0], scale=[2.0, 0.5, 1.0], low=[0.0, -1.0, 5.0], high=[1.0, 1.0, 9.0])
    x = torch.tensor([[0.2, 0.9, 5.5], [0.99, -0.99, 8.9]], dtype=torch.float64)
    y, _, _, _ = module.preprocess(x)
    torch.testing.assert_close(module.postprocess(y), x, rtol=1e-6, atol=1e-6)


def test_log_det_is_the_log_jacobian_of_the_data_map():
    module = _module(shift=[0.1, -0.2, 0.0], scale=[2.0, 0.5, 1.0], low=[0.0, -1.0, 5.0], high=[1.0, 1.0, 9.0])
    x = torch.tensor([[0.2, 0.3, 6.0]], dtype=torch.float64)
    _, log_det, _, _ = module.preprocess(x)
    # The map is elementwise, so the Jacobian is diagonal: sum of log |dy_d/dx_d|.
    jac = torch.autograd.functional.jacobian(lambda v: module.data_map.transform().inv(v), x[0])
    torch.testing.assert_close(log_det[0], torch.log(torch.diagonal(jac).abs()).sum())


def test_standardisation_only_shifts_scores_by_its_log_scale():
    x = torch.tensor([[0.5, -1.0, 2.0]], dtype=torch.float64)
    module = _module(shift=[0.0, 0.0, 0.0], scale=[2.0, 4.0, 0.5])
    _, log_det, _, _ = module.preprocess(x)
    np.testing.assert_allclose(log_det.item(), -np.log([2.0, 4.0, 0.5]).sum())


def test_forward_returns_per_row_terms_with_nonnegative_kl():
    module = _module(shift=np.zeros(3), scale=np.ones(3))
    log_px, kl, log_det = module(torch.randn(5, 3))
    assert log_px.shape == kl.shape == (1, 5) and log_det.shape == (5,)
    assert torch.all(kl >= 0)


def test_log_marginal_with_one_draw_equals_the_single_log_weight():
    module = _module(likelihood="bernoulli")
    x = torch.tensor([[0.0, 1.0, 1.0], [1.0, 0.0, 0.0]])
    eps = torch.randn(1, 2, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        iwae = module.log_marginal(x, eps, bound="iwae")
        qz = module.encode(x)
        z = qz.mean + qz.stddev * eps
        expected = module.decode(z).log_prob(x) + module.prior().log_prob(z) - qz.log_prob(z)
    torch.testing.assert_close(iwae, expected.double())


def test_log_marginal_does_not_depend_on_the_draw_chunking():
    module = _module(likelihood="continuous_bernoulli")
    x = torch.rand(4, 3, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(50, 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        for bound in ("iwae", "elbo"):
            whole = module.log_marginal(x, eps, bound=bound)
            torch.testing.assert_close(module.log_marginal(x, eps, bound=bound, k_chunk=7), whole)


def test_encoder_outputs_are_capped_so_scores_stay_finite_under_extreme_draws():
    module = _module(shift=np.zeros(3), scale=np.ones(3), activation="identity")
    with torch.no_grad():
        # Exploded encoder weights: the posterior would be far outside float32's range.
        module.encoder_head.weight.mul_(1e30)
        x = torch.tensor([[1e6, -1e6, 3.0], [0.0, 0.0, 0.0]], dtype=torch.float64)
        qz = module.encode(module.preprocess(x)[0], capped=True)
        assert qz.mean.abs().max() <= MAX_LATENT_LOC
        assert MIN_LATENT_SCALE <= qz.stddev.min() and qz.stddev.max() <= MAX_LATENT_SCALE
        eps = torch.randn(64, 2, generator=torch.Generator().manual_seed(0)) * 10
        for bound in ("iwae", "elbo"):
            assert torch.isfinite(module.log_marginal(x, eps, bound=bound)).all()


def test_forward_on_model_space_rows_equals_forward_on_data():
    module = _module(shift=[0.1, -0.2, 0.0], scale=[2.0, 0.5, 1.0], low=[0.0, -1.0, 5.0], high=[1.0, 1.0, 9.0])
    x = torch.tensor([[0.2, 0.9, 5.5], [0.99, -0.99, 8.9]], dtype=torch.float64)
    y, log_det, _, _ = module.preprocess(x)
    torch.manual_seed(3)
    from_data = module(x)
    torch.manual_seed(3)
    from_model_space = module(y, log_det.float())
    for a, b in zip(from_data, from_model_space):
        torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_an_array_is_a_table_of_real_columns():
    module = _module(shift=[0.1, -0.2, 0.0], scale=[2.0, 0.5, 1.0])
    layout = module.layout
    assert layout.kinds == ["real"] * 3 and layout.width == 3 and layout.n_logits == 0
    # Training noise reaches every entry, and rows map to model space in place of their columns.
    assert module.noise_entries() is None
    x = torch.tensor([[0.2, float("nan"), 5.5], [0.9, -0.9, 8.9]], dtype=torch.float64)
    y, _, mask, bins = module.preprocess(x)
    assert bins is None and mask.tolist() == [[True, False, True], [True, True, True]]
    torch.testing.assert_close(y[1], ((x[1] - torch.tensor([0.1, -0.2, 0.0])) / torch.tensor([2.0, 0.5, 1.0])).float())


def test_decoder_means_are_means_in_data_space_through_a_nonlinear_map():
    from skvae import _inference

    module = _module(low=[0.0, -1.0, 5.0], high=[1.0, 1.0, 9.0])
    z = torch.randn(4, 2, generator=torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        module.raw_scale.fill_(0.5)  # a wide decoder: its mean and median differ in data space
        means = _inference.decoder_mean(module, z.numpy(), device="cpu")
        torch.manual_seed(1)
        draws = module.decode(z.float()).base_dist.draw(module.data_map, (200_000,)).mean(0)
        median = module.postprocess(module.decode(z.float()).mean)
    np.testing.assert_allclose(means, draws.numpy(), atol=3e-3)
    assert np.abs(means - median.numpy()).max() > 0.05


def test_imputer_draws_a_binary_hole_as_zero_or_one():
    from skvae import VAEImputer

    rng = np.random.default_rng(0)
    X = (rng.random((200, 5)) < 0.3).astype(float)
    X[rng.random(X.shape) < 0.2] = np.nan
    params = dict(likelihood="bernoulli", n_components=2, hidden_layer_sizes=(8,), max_iter=3, random_state=0)
    drawn = VAEImputer(sample_posterior=True, **params).fit(X).transform(X)
    assert set(np.unique(drawn[np.isnan(X)])) == {0.0, 1.0}
    means = VAEImputer(**params).fit(X).transform(X)[np.isnan(X)]
    assert np.all((means > 0) & (means < 1))


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_mixture"])
@pytest.mark.parametrize("bound", ["iwae", "elbo"])
def test_column_log_marginals_rescore_each_row_without_a_column_from_the_rows_proposal(bound, likelihood):
    """Every column kind's term and Jacobian share, against scoring the row with that column hidden by hand.

    Real columns (one with frequent values), integer ones (one with frequent
    values), two categorical blocks of unequal size, a Yeo-Johnson map, holes,
    rows with nothing or one entry observed, and the draws in chunks of 7: the
    same proposal and draws give the same numbers to float64 rounding.
    """
    kinds = ["real", "real", "integer", "categorical", "integer", "real", "categorical"]
    columns = {"kinds": kinds, "n_levels": [0, 0, 0, 3, 0, 0, 2], "spikes": [[], [0.0, 1.0], [0.0, 2.0], [], [], [], []]}
    generator = torch.Generator().manual_seed(0)
    data_map = [
        ("standardise", {"loc": 0.3 * torch.randn(5, generator=generator), "scale": torch.rand(5, generator=generator) + 0.5}),
        ("yeo_johnson", {"lambdas": torch.rand(5, generator=generator) + 0.5, "low": -2 * torch.ones(5), "high": 2 * torch.ones(5)}),
    ]
    module = VAEModule(
        7, 2, (8,), likelihood=likelihood, n_mixture_components=3, data_map=data_map, columns=columns
    ).double()
    with torch.no_grad():
        for parameter in module.parameters():
            parameter.normal_(0, 0.5, generator=generator)
    rng = np.random.default_rng(1)
    n = 16
    X = np.column_stack([
        rng.normal(size=n), np.where(rng.random(n) < 0.5, rng.integers(0, 2, n), rng.normal(size=n)),
        rng.integers(0, 4, n), rng.integers(0, 3, n), rng.integers(0, 5, n), 3 * rng.normal(size=n), rng.integers(0, 2, n),
    ]).astype(float)
    X[rng.random(X.shape) < 0.2] = np.nan
    X[0] = np.nan
    X[1] = [0.5] + [np.nan] * 6
    x = torch.as_tensor(X)
    eps = torch.randn(64, 2, generator=generator, dtype=torch.float64)
    refine = torch.randn(64, 2, generator=generator, dtype=torch.float64)
    with torch.inference_mode():
        got = module.column_log_marginals(x, eps, bound=bound, k_chunk=7, refine_eps=refine)
        y, _, mask, bins = module.preprocess(x)
        qz, pz = module.posterior(y, mask, refine, k_chunk=7, bins=bins), module.prior()
        z = qz.base_dist.loc + qz.base_dist.scale * eps[:, None, :]
        expected = torch.empty(n, 8, dtype=torch.float64)
        for j in range(-1, 7):
            hidden = x.clone()
            if j >= 0:
                hidden[:, j] = torch.nan
            y_j, log_det_j, mask_j, bins_j = module.preprocess(hidden)
            log_px = observed_log_prob(module.decode(z, bins_j), y_j, mask_j)
            if bound == "iwae":
                value = torch.logsumexp(log_px + pz.log_prob(z) - qz.log_prob(z), 0) - math.log(len(eps))
            else:
                value = log_px.mean(0) - kl_divergence(qz, pz)
            expected[:, j + 1] = torch.where((~torch.isnan(hidden)).any(-1), value + log_det_j, 0.0)
        full = module.log_marginal(x, eps, bound=bound, k_chunk=7, refine_eps=refine)
    # Nothing observed: 0; one entry: 0 without it, the row's score without any other.
    assert (got[0] == 0).all() and got[1, 1] == 0 and (got[1, 2:] == got[1, 0]).all() and got[1, 0] != 0
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-9)
    torch.testing.assert_close(got[:, 0], full, rtol=0, atol=0)


def test_a_learned_prior_leaves_the_networks_initial_weights_as_they_were():
    plain, mixture = _module(), _module(prior_components=3)
    for name, weight in plain.state_dict().items():
        torch.testing.assert_close(mixture.state_dict()[name], weight, rtol=0, atol=0)
    # The prior's own weights start as equal components as wide as N(0, I), at spread-out means.
    pz = mixture.prior()
    assert isinstance(pz, torch.distributions.MixtureSameFamily) and pz.mixture_distribution.probs.shape == (3,)
    torch.testing.assert_close(pz.component_distribution.base_dist.scale, torch.ones(3, 2))
    assert pz.component_distribution.base_dist.loc.std() > 0.1


def test_a_learned_prior_is_trained_through_the_bound():
    module = _module(shift=np.zeros(3), scale=np.ones(3), prior_components=3)
    log_px, kl, _ = module(torch.randn(5, 3), n_draws=2)
    (log_px - kl).sum().backward()
    for name in ("prior_logits", "prior_loc", "prior_raw_scale"):
        assert getattr(module, name).grad.abs().sum() > 0


def test_a_learned_priors_kl_is_estimated_from_the_same_draws():
    # A mixture prior has no closed-form KL: the ELBO, the detector's penalty
    # and a one-draw training step estimate it from the draws z_k themselves.
    module = _module(shift=np.zeros(3), scale=np.ones(3), prior_components=3)
    x = torch.randn(6, 3, generator=torch.Generator().manual_seed(1))
    eps = torch.randn(40, 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        qz, pz = module.encode(x), module.prior()
        z = qz.mean + qz.stddev * eps[:, None, :]
        log_px, log_ratio = module.decode(z).log_prob(x), qz.log_prob(z) - pz.log_prob(z)
        elbo = module.log_marginal(x, eps, bound="elbo")
        torch.testing.assert_close(elbo, (log_px - log_ratio).mean(0).double(), rtol=1e-6, atol=1e-6)
        iwae = module.log_marginal(x, eps, bound="iwae")
        torch.testing.assert_close(
            module.log_marginal(x, eps, bound="iwae", kl_penalty=2.0), iwae - 2.0 * log_ratio.mean(0).double(),
            rtol=1e-6, atol=1e-6,
        )
        torch.manual_seed(3)
        _, kl, _ = module(x, n_draws=1)
        torch.manual_seed(3)
        z = qz.rsample((1,))
        torch.testing.assert_close(kl, qz.log_prob(z) - pz.log_prob(z))
