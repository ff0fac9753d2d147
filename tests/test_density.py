"""score_samples is log p(x) of the data as passed: checks against closed forms."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy.integrate import trapezoid
from sklearn.decomposition import PCA
from sklearn.exceptions import ConvergenceWarning
from torch.distributions import MultivariateNormal, TransformedDistribution

from skvae import VAEDensityEstimator, VAETransformer
from skvae._likelihoods import MIN_SCALE
from skvae._module import MIN_LATENT_SCALE

LINEAR = dict(hidden_layer_sizes=(), likelihood="gaussian", prior="normal", random_state=0)


def _ppca_data(n_samples, *, n_features=6, n_components=2, noise=0.5, seed=0):
    """Rows of a probabilistic PCA model, x = z W + mu + noise * e."""
    rng = np.random.default_rng(seed)
    W = rng.normal(size=(n_components, n_features)) * 2
    mu = rng.normal(size=n_features) * 3
    z = rng.normal(size=(n_samples, n_components))
    return z @ W + mu + noise * rng.normal(size=(n_samples, n_features))


def _closed_form_log_density(est, X):
    """Exact log p(x) of a fitted linear-Gaussian VAE: y ~ N(b, W W^T + diag(s^2)), x = t(y)."""
    module = est.net_.module_
    with torch.no_grad():
        W = module.decoder_head.weight.double()
        s = F.softplus(module.raw_scale.double()) + MIN_SCALE
        cov = W @ W.T + torch.diag(s**2)
        py = MultivariateNormal(module.decoder_head.bias.double(), cov)
        px = TransformedDistribution(py, [module.data_map.transform()])
        return px.log_prob(torch.as_tensor(X)).numpy()


def _set_exact_posterior(est):
    """Make a one-latent linear-Gaussian VAE's encoder the exact posterior p(z|y) of its decoder.

    With y = w z + b + diag(s) e, z ~ N(0, 1): z|y ~ N(sum(w (y - b) / s^2) / P, 1 / P),
    P = 1 + sum(w^2 / s^2), a linear mean and a constant scale, which the linear encoder holds exactly.
    """
    module = est.net_.module_
    with torch.no_grad():
        w, b = module.decoder_head.weight[:, 0].double(), module.decoder_head.bias.double()
        s2 = (F.softplus(module.raw_scale.double()) + MIN_SCALE) ** 2
        precision = 1 + (w**2 / s2).sum()
        gain = w / s2 / precision
        module.encoder_head.weight.copy_(torch.stack([gain, torch.zeros_like(gain)]))
        scale = precision**-0.5
        raw_scale = torch.log(torch.expm1(scale - MIN_LATENT_SCALE))  # inverse of softplus + MIN_LATENT_SCALE
        module.encoder_head.bias.copy_(torch.stack([-(gain * b).sum(), raw_scale]))


@pytest.mark.parametrize("k", [1, 7, 100])
def test_iwae_with_the_exact_posterior_is_the_exact_log_density(k):
    """With the exact posterior as proposal every importance weight is p(x): IWAE_K is log p(x) for any K,
    to float32 rounding, and the closed form checks score_samples to 1e-4 nats (no constant may hide)."""
    X = _ppca_data(400, n_features=4, n_components=1, seed=5)
    de = VAEDensityEstimator(n_components=1, max_iter=3, n_importance_samples=k, **LINEAR).fit(X[:300])
    _set_exact_posterior(de)
    exact = _closed_form_log_density(de, X[300:])
    np.testing.assert_allclose(de.score_samples(X[300:]), exact, rtol=0, atol=1e-4)
    assert de.score(X[300:]) == pytest.approx(exact.mean(), abs=1e-5)


@pytest.mark.slow
def test_linear_vae_reaches_the_ppca_maximum_likelihood():
    X = _ppca_data(3000)
    X_train, X_test = X[:2000], X[2000:]
    # A large step and patience: the linear model's loss surface is smooth,
    # and the test asks for the optimum, not for a good-enough fit.
    de = VAEDensityEstimator(
        n_components=2, learning_rate_init=1e-2, n_iter_no_change=50, **LINEAR
    ).fit(X_train)
    pca = PCA(n_components=2).fit(X_train)
    assert abs(de.score(X_test) - pca.score(X_test)) < 0.05


def test_iwae_increases_with_k_towards_the_closed_form_marginal():
    X = _ppca_data(2000, seed=1)
    # A short fit leaves the encoder short of the exact posterior, so the
    # bound has room to tighten with K (ELBO training at a fixed step size,
    # the raw weights of the last step: the tolerances below were set for them).
    de = VAEDensityEstimator(
        n_components=2, max_iter=20, batch_size=128, early_stopping=False, ema_decay=0.0,
        n_training_importance_samples=1, learning_rate_init=1e-3, **LINEAR
    )
    de.fit(X[:1000])
    X_test = X[1000:]
    exact = _closed_form_log_density(de, X_test)
    means = []
    for k in (1, 10, 100, 1000):
        scores = de.set_params(n_importance_samples=k).score_samples(X_test)
        means.append(scores.mean())
        # A lower bound in expectation: never above the truth beyond Monte Carlo
        # error, taken row by row against the closed form (the spread of the
        # rows' own densities is not the estimate's error).
        gap = scores - exact
        assert gap.mean() <= 3 * gap.std() / np.sqrt(len(gap))
    assert np.all(np.diff(means) > 0)
    assert means[0] < exact.mean() - 0.2
    assert abs(means[-1] - exact.mean()) < 0.1


@pytest.mark.parametrize("a, b", [(3.7, -5.0), (1e-3, 2.0), (250.0, 1e4)])
def test_affine_rescaling_shifts_scores_by_the_log_jacobian(a, b):
    X = _ppca_data(400, seed=2)
    params = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=5, random_state=0)
    scores = VAEDensityEstimator(**params).fit(X).score_samples(X)
    scaled = VAEDensityEstimator(**params).fit(a * X + b).score_samples(a * X + b)
    np.testing.assert_allclose(scaled, scores - X.shape[1] * np.log(abs(a)), atol=1e-3)


@pytest.mark.parametrize("likelihood", ["gaussian", "gaussian_mixture"])
@pytest.mark.parametrize("bounds", [None, (0.0, 1.0), (-1.0, 4.0)])
def test_one_dimensional_density_integrates_to_one(likelihood, bounds):
    # A Jacobian left out or counted twice moves the integral far from 1.
    rng = np.random.default_rng(3)
    x = np.concatenate([rng.beta(2, 5, size=300), rng.beta(8, 2, size=200)])
    low, high = bounds or (-2.0, 3.0)
    X = (low + (high - low) * x)[:, None] if bounds else x[:, None]
    de = VAEDensityEstimator(
        n_components=1, hidden_layer_sizes=(16,), max_iter=20, likelihood=likelihood,
        bounds=bounds, n_importance_samples=500, random_state=0,
    ).fit(X)
    grid = np.linspace(low, high, 4001)[1:-1]
    mass = trapezoid(np.exp(de.score_samples(grid[:, None])), grid)
    assert 0.97 < mass < 1.01


def test_values_outside_the_bounds_are_refused():
    X = np.random.default_rng(4).uniform(0.1, 0.9, size=(50, 2))
    de = VAEDensityEstimator(
        n_components=1, hidden_layer_sizes=(8,), max_iter=2, bounds=(0, 1), random_state=0
    ).fit(X)
    with pytest.raises(ValueError, match=r"feature 1 has values in \[1.5, 1.5\], its bounds are \(0, 1\)"):
        de.score_samples(np.array([[0.5, 1.5]]))
    with pytest.raises(ValueError, match="strictly inside bounds"):
        de.score_samples(np.array([[0.0, 0.5]]))


def test_samples_follow_the_fitted_model():
    # A linear-Gaussian VAE's marginal is N(b, W W^T + diag(s^2)) in model space,
    # mapped to data space by the standardisation: samples must have its moments.
    X = _ppca_data(2000, seed=2)
    de = VAEDensityEstimator(n_components=2, max_iter=30, **LINEAR).fit(X)
    module = de.net_.module_
    with torch.no_grad():
        W = module.decoder_head.weight.double()
        s = F.softplus(module.raw_scale.double()) + MIN_SCALE
        loc, scale = module.data_map.step0_loc, module.data_map.step0_scale
        mean = (loc + scale * module.decoder_head.bias.double()).numpy()
        cov = (scale[:, None] * (W @ W.T + torch.diag(s**2)) * scale[None, :]).numpy()
    samples = de.sample(200_000, random_state=0)
    np.testing.assert_allclose(samples.mean(axis=0), mean, atol=0.02 * np.sqrt(np.diag(cov)).max())
    np.testing.assert_allclose(np.cov(samples.T), cov, atol=0.02 * np.abs(cov).max())


SMALL = dict(n_components=2, hidden_layer_sizes=(16,), max_iter=15, random_state=0)


@pytest.mark.parametrize("order", [("gaussian_mixture", "gaussian"), ("gaussian", "gaussian_mixture")])
def test_likelihood_auto_keeps_the_candidate_that_scores_the_held_out_rows_best(order, monkeypatch):
    # Both orders of the candidates: a fit that kept the first, the last or the
    # worse one fails at least one of them.
    monkeypatch.setattr(VAEDensityEstimator, "_auto_likelihoods", order)
    X = _ppca_data(600, noise=0.1, seed=6)
    auto = VAEDensityEstimator(**SMALL).fit(X)
    fits = {name: VAEDensityEstimator(likelihood=name, **SMALL).fit(X) for name in order}
    best = max(fits, key=lambda name: fits[name].best_validation_score_)
    assert fits["gaussian_mixture"].best_validation_score_ != fits["gaussian"].best_validation_score_
    assert auto.likelihood_ == best
    assert auto.validation_scores_ == fits[best].validation_scores_
    np.testing.assert_array_equal(auto.score_samples(X[:50]), fits[best].score_samples(X[:50]))


def _count_trainings(monkeypatch):
    import skvae._base

    calls = []
    real = skvae._base.train
    monkeypatch.setattr(skvae._base, "train", lambda net, X, options: calls.append(net) or real(net, X, options))
    return calls


@pytest.mark.parametrize("kwargs", [dict(), dict(early_stopping=False), dict(likelihood="gaussian_mixture")])
def test_likelihood_auto_trains_two_models_only_with_validation_rows(kwargs, monkeypatch):
    calls = _count_trainings(monkeypatch)
    de = VAEDensityEstimator(**{**SMALL, **kwargs}).fit(_ppca_data(600, noise=0.1, seed=6))
    assert len(calls) == (2 if not kwargs else 1)
    assert {net.module_.arguments["likelihood"] for net in calls} == (
        {"gaussian_mixture", "gaussian"} if not kwargs else {"gaussian_mixture"}
    )


def test_likelihood_auto_keeps_the_mixture_in_partial_fit_and_for_a_table(monkeypatch):
    pd = pytest.importorskip("pandas")
    calls = _count_trainings(monkeypatch)
    X = _ppca_data(600, noise=0.1, seed=6)
    assert VAEDensityEstimator(**SMALL).partial_fit(X).likelihood_ == "gaussian_mixture"
    table = pd.DataFrame(X[:, :3], columns=["a", "b", "c"]).assign(kind=pd.Categorical(np.where(X[:, 3] > 0, "a", "b")))
    assert VAEDensityEstimator(**SMALL).fit(table).likelihood_ == "gaussian_mixture"
    assert len(calls) == 2


def test_likelihood_auto_keeps_the_candidate_that_trained_when_the_other_diverged(monkeypatch):
    import skvae._base

    real = skvae._base.train

    def diverging(likelihoods):
        def train(net, X, options):
            if net.module_.arguments["likelihood"] in likelihoods:
                raise ValueError(f"Training diverged in epoch 1 ({net.module_.arguments['likelihood']})")
            return real(net, X, options)

        return train

    X = _ppca_data(600, noise=0.1, seed=6)
    monkeypatch.setattr(skvae._base, "train", diverging({"gaussian"}))
    assert VAEDensityEstimator(**SMALL).fit(X).likelihood_ == "gaussian_mixture"
    monkeypatch.setattr(skvae._base, "train", diverging({"gaussian_mixture"}))
    assert VAEDensityEstimator(**SMALL).fit(X).likelihood_ == "gaussian"
    monkeypatch.setattr(skvae._base, "train", diverging({"gaussian", "gaussian_mixture"}))
    de = VAEDensityEstimator(**SMALL)
    with pytest.raises(ValueError, match=r"diverged in epoch 1 \(gaussian_mixture\)"):
        de.fit(X)
    assert not hasattr(de, "net_")


AUTO = dict(n_components="auto", hidden_layer_sizes=(32,), likelihood="gaussian", max_iter=30, random_state=0)


def test_n_components_auto_keeps_the_dimensions_the_encoder_uses():
    # Rows on a 2-D plane in 8-D, with little noise: a first fit of 16 latent
    # dimensions uses about 2 and lets the rest collapse onto the prior.
    X = _ppca_data(2000, n_features=8, n_components=2, noise=0.05, seed=3)
    de = VAEDensityEstimator(**AUTO).fit(X)
    assert 2 <= de.n_components_ <= 3
    assert de.net_.module_.n_components == de.n_components_
    assert np.isfinite(de.score_samples(X[:20])).all()
    # More dimensions in the data, more kept.
    X6 = _ppca_data(2000, n_features=8, n_components=6, noise=0.05, seed=3)
    assert VAEDensityEstimator(**AUTO).fit(X6).n_components_ >= 6


def test_n_components_auto_counts_on_a_first_fit_then_fits_anew(monkeypatch):
    # The fit proper is the fit of n_components_ dimensions from scratch, on
    # the same rows and seed: nothing of the first fit's weights carries over.
    calls = _count_trainings(monkeypatch)
    X = _ppca_data(2000, n_features=8, n_components=3, noise=0.05, seed=4)
    auto = VAEDensityEstimator(**AUTO).fit(X)
    first, proper = calls
    assert first.module_.n_components == 16 and len(first.history) == 20
    assert proper.module_.n_components == auto.n_components_ < 16
    fixed = VAEDensityEstimator(**{**AUTO, "n_components": auto.n_components_}).fit(X)
    assert auto.loss_curve_ == fixed.loss_curve_
    np.testing.assert_array_equal(auto.score_samples(X[:50]), fixed.score_samples(X[:50]))


def test_n_components_auto_first_fit_is_short_and_quiet(monkeypatch):
    from skorch.callbacks import Callback

    class Epochs(Callback):
        def on_epoch_end(self, net, **kwargs):
            seen.append(len(net.history))

    seen, calls = [], _count_trainings(monkeypatch)
    X = _ppca_data(300, n_features=8, n_components=3, noise=0.05, seed=4)
    # max_iter below 20 caps the first fit; the user's callbacks see the fit proper only.
    de = VAEDensityEstimator(**{**AUTO, "max_iter": 5, "early_stopping": False}, callbacks=[Epochs()])
    with pytest.warns(ConvergenceWarning) as record:
        de.fit(X)
    assert [len(net.history) for net in calls] == [5, 5]
    assert seen == [1, 2, 3, 4, 5]
    assert len(record) == 1  # the first fit's max_iter is its own business


def test_n_components_auto_in_partial_fit_builds_16(monkeypatch):
    calls = _count_trainings(monkeypatch)
    X = _ppca_data(300, noise=0.05, seed=4)
    de = VAEDensityEstimator(**AUTO).partial_fit(X)
    assert de.n_components_ == 16
    assert de.partial_fit(X).n_components_ == 16
    assert len(calls) == 2  # one epoch a call, no first fit


def test_n_components_auto_first_fit_that_fails_leaves_no_model(monkeypatch):
    # An interrupt after two epochs of the first fit: the 16-dimension model it
    # was training is not the user's, so the estimator is left unfitted.
    import skvae._base

    real = skvae._base.train

    def interrupted(net, X, options):
        real(net, X, options._replace(max_epochs=2))
        raise KeyboardInterrupt

    monkeypatch.setattr(skvae._base, "train", interrupted)
    de = VAEDensityEstimator(**AUTO)
    with pytest.raises(KeyboardInterrupt):
        de.fit(_ppca_data(200, noise=0.05, seed=4))
    assert not hasattr(de, "net_") and not hasattr(de, "n_components_")


def _two_blobs(n_samples, seed):
    """Rows near two short segments 8 units apart in 3-D: codes that N(0, I) cannot split."""
    rng = np.random.default_rng(seed)
    side = rng.integers(0, 2, n_samples) * 2 - 1
    t = rng.normal(size=n_samples)
    X = np.c_[3 * side + 0.3 * t, 3 * side - 0.3 * t, 0.5 * t + side]
    return X + 0.05 * rng.normal(size=X.shape)


def test_prior_mixture_learns_separate_clusters_that_the_normal_prior_joins():
    # A decoder of N(0, I) must carry some mass across the gap between the
    # clusters; a learned mixture puts its components on each side.
    X_train, X_test = _two_blobs(1000, seed=0), _two_blobs(800, seed=1)
    params = dict(n_components=2, hidden_layer_sizes=(32, 32), likelihood="gaussian", max_iter=60, random_state=0)
    scores, between = {}, {}
    for prior in ("normal", "mixture"):
        de = VAEDensityEstimator(prior=prior, **params).fit(X_train)
        scores[prior] = de.score(X_test)
        between[prior] = np.mean(np.abs(de.sample(2000, random_state=0)[:, 0]) < 1.5)
    assert de.net_.module_.prior_components == 10
    assert scores["mixture"] > scores["normal"] + 0.4
    assert between["mixture"] < 0.02 < 0.05 < between["normal"]


def test_density_defaults_are_the_shared_ones_but_the_learned_prior():
    params, shared = VAEDensityEstimator().get_params(), VAETransformer().get_params()
    assert params == {**shared, "prior": "mixture"} and shared["prior"] == "normal"
