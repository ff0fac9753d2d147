"""The skorch engine: batch slicing, stopping, and interrupts."""

import numpy as np
import pytest
import torch
from sklearn.base import clone
from skorch.callbacks import Callback

from skvae import VAEDensityEstimator
from skvae._callbacks import LastGoodState
from skvae._module import VAEModule
from skvae._net import VAENet, adam_options
from skvae._rows import BatchIterator, ModelSpaceRows, Rows
from skvae._skorch_compat import StoppingRule, StopTraining
from skvae._torch_utils import cloned_state


def _rows_seen(iterator):
    return torch.cat([xb[:, 0] for xb, _ in iterator]).long().tolist()


def test_each_pass_visits_every_row_once_in_a_new_seeded_order():
    X = torch.arange(10, dtype=torch.float32)[:, None]
    it = BatchIterator(Rows(X), None, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(0))
    first, second = _rows_seen(it), _rows_seen(it)
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second
    again = BatchIterator(Rows(X), None, batch_size=3, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert _rows_seen(again) == first
    assert len(it) == 4


def test_subset_indices_and_read_only_numpy_input():
    X = np.arange(10, dtype=np.float64)[:, None]
    X.setflags(write=False)
    it = BatchIterator(Rows(X), np.array([7, 2, 5]), batch_size=2, shuffle=False)
    assert _rows_seen(it) == [7, 2, 5]
    assert _rows_seen(BatchIterator(Rows(X), None, batch_size=4, shuffle=False)) == list(range(10))


def test_stopping_rule_raises_its_own_signal():
    net = VAENet(VAEModule, module__n_features=2, module__n_components=1, max_epochs=50, batch_size=4,
                 train_split=None, verbose=0,
                 callbacks=[("stopping", StoppingRule(monitor="train_loss", patience=1, threshold=1e9,
                                                      threshold_mode="abs"))])
    net.fit(torch.randn(8, 2))
    rule = dict(net.callbacks_)["stopping"]
    assert rule.stopped_ and len(net.history) == 2
    with pytest.raises(StopTraining):
        rule.misses_, rule.patience = 0, 1
        rule.dynamic_threshold_ = -np.inf
        rule.on_epoch_end(net)


class _Interrupt(Callback):
    def on_batch_end(self, net, **kwargs):
        raise KeyboardInterrupt


def test_a_users_keyboard_interrupt_is_not_swallowed():
    net = VAENet(VAEModule, module__n_features=2, module__n_components=1, max_epochs=3, batch_size=4,
                 train_split=None, verbose=0, callbacks=[_Interrupt()])
    with pytest.raises(KeyboardInterrupt):
        net.fit(torch.randn(8, 2))


class _PoisonInEpoch(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_batch_end(self, net, training=False, **kwargs):
        if training and len(net.history) == self.epoch:
            with torch.no_grad():
                net.module_.decoder_head.bias.fill_(float("nan"))


def test_last_good_state_undoes_a_diverged_epoch_and_stops():
    X = torch.randn(16, 2, generator=torch.Generator().manual_seed(0))
    kept = {}

    class _Record(Callback):
        def on_epoch_end(self, net, **kwargs):
            kept[len(net.history)] = {k: v.clone() for k, v in net.module_.state_dict().items()}

    net = VAENet(VAEModule, module__n_features=2, module__n_components=1, max_epochs=6, batch_size=4,
                 train_split=None, verbose=0, callbacks=[("last_good", LastGoodState()), _Record(), _PoisonInEpoch(3)])
    net.partial_fit(X)
    guard = dict(net.callbacks_)["last_good"]
    assert guard.diverged_epoch_ == 3 and "to nan nats per sample" in guard.reason_
    assert len(net.history) == 2 and guard.state_ is None
    for key, value in net.module_.state_dict().items():
        assert torch.equal(value, kept[2][key])


def test_model_space_rows_hold_what_per_batch_preprocessing_gives():
    steps = [("bounds", {"low": [0.0, -1.0, 5.0], "high": [1.0, 1.0, 9.0]}),
             ("standardise", {"loc": [0.1, -0.2, 0.0], "scale": [2.0, 0.5, 1.0]})]
    module = VAEModule(n_features=3, n_components=1, data_map=steps)
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.uniform(0, 1, 7), rng.uniform(-1, 1, 7), rng.uniform(5, 9, 7)])
    rows = ModelSpaceRows.from_data(module, X, chunk_rows=3)
    index = torch.tensor([4, 1, 6])
    y, log_det, _, _ = module.preprocess(torch.from_numpy(X[[4, 1, 6]]))
    batch = rows[index]
    assert set(batch) == {"x", "log_det"}
    assert batch["x"].dtype == batch["log_det"].dtype == torch.float32
    torch.testing.assert_close(batch["x"], y, rtol=0, atol=0)
    torch.testing.assert_close(batch["log_det"], log_det.float(), rtol=0, atol=0)
    torch.testing.assert_close(rows[1:3]["x"], module.preprocess(torch.from_numpy(X[1:3]))[0], rtol=0, atol=0)
    assert len(rows) == 7


def _tiny_net(callbacks, **kwargs):
    defaults = dict(module__n_features=2, module__n_components=1, max_epochs=3, batch_size=4,
                    train_split=None, verbose=0)
    return VAENet(VAEModule, callbacks=callbacks, **{**defaults, **kwargs})


class _RecordModes(Callback):
    def initialize(self):
        self.modes_ = []
        return self

    def on_batch_end(self, net, batch=None, training=False, **kwargs):
        self.modes_.append((training, net.module_.training))


def test_module_mode_follows_training_and_validation_batches():
    from skorch.dataset import ValidSplit

    recorder = _RecordModes()
    _tiny_net([recorder], train_split=ValidSplit(0.25)).fit(torch.randn(16, 2))
    assert {training for training, _ in recorder.modes_} == {True, False}
    assert all(training == mode for training, mode in recorder.modes_)


class _WeightsPerEpoch(Callback):
    def initialize(self):
        self.states_ = []
        return self

    def on_epoch_end(self, net, **kwargs):
        self.states_.append({key: value.clone() for key, value in net.module_.state_dict().items()})


def test_stopping_rule_restores_a_snapshot_of_the_best_weights():
    # threshold=1e9: only the first epoch counts as an improvement.
    weights = _WeightsPerEpoch()
    rule = StoppingRule(monitor="train_loss", patience=5, threshold=1e9, threshold_mode="abs",
                        load_best=True)
    net = _tiny_net([weights, ("stopping", rule)], max_epochs=3).fit(torch.randn(8, 2))
    first, last = weights.states_[0], weights.states_[-1]
    assert not torch.equal(first["encoder_head.weight"], last["encoder_head.weight"])
    for key, value in net.module_.state_dict().items():
        torch.testing.assert_close(value, first[key], rtol=0, atol=0)


def test_cloned_state_copies_every_tensor_of_a_nested_state():
    state = {"a": torch.ones(2), "b": [torch.zeros(1), (torch.ones(1), 3)], "c": 1.5}
    copy = cloned_state(state)
    for tensor in (state["a"], state["b"][0], state["b"][1][0]):
        tensor.add_(1)
    torch.testing.assert_close(copy["a"], torch.ones(2))
    assert copy["b"][0].item() == 0 and copy["b"][1][0].item() == 1
    assert isinstance(copy["b"][1], tuple) and copy["b"][1][1] == 3 and copy["c"] == 1.5


def test_adam_uses_the_fused_kernel_where_torch_has_one():
    assert adam_options("meta") == {}
    version = tuple(int(part) for part in torch.__version__.split(".")[:2])
    if version >= (2, 4):
        assert adam_options("cpu") == {"optimizer__fused": True}
        net = _tiny_net([], **adam_options("cpu")).initialize()
        assert net.optimizer_.defaults["fused"] is True


class _RecordWeights(Callback):
    """Keep a copy of the weights after every training step."""

    def on_train_begin(self, net, **kwargs):
        self.steps = []

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            self.steps.append({k: p.detach().clone() for k, p in net.module_.named_parameters()})


@pytest.mark.parametrize("decay", [0.5, 0.99])
def test_the_fitted_weights_are_the_debiased_moving_average_of_the_steps(decay):
    X = np.random.default_rng(0).normal(size=(64, 3))
    record = _RecordWeights()
    params = dict(n_components=2, hidden_layer_sizes=(8,), batch_size=16, max_iter=3, early_stopping=False,
                  random_state=0)
    de = VAEDensityEstimator(ema_decay=decay, callbacks=[("record", record)], **params).fit(X)
    steps = dict(de.net_.callbacks_)["record"].steps
    assert len(steps) == 12
    weights = np.array([(1 - decay) * decay ** (len(steps) - 1 - t) for t in range(len(steps))])
    weights /= weights.sum()
    for name, p in de.net_.module_.named_parameters():
        expected = sum(w * step[name].double() for w, step in zip(weights, steps))
        torch.testing.assert_close(p.detach().double(), expected, rtol=1e-5, atol=1e-6)
    # Without averaging the model is the last step; training goes on from the
    # last step either way, so the raw weights of both fits are the same.
    raw = VAEDensityEstimator(ema_decay=0.0, callbacks=[("record", _RecordWeights())], **params).fit(X)
    for name, p in raw.net_.module_.named_parameters():
        torch.testing.assert_close(p.detach(), steps[-1][name], rtol=0, atol=0)
        torch.testing.assert_close(de.net_.raw_state_[name], p.detach(), rtol=0, atol=0)


_STEPS = []


class _RecordWeightsGlobally(Callback):
    """Append the weights after every training step to ``_STEPS`` (callbacks are copied per call)."""

    def on_batch_end(self, net, training=False, **kwargs):
        if training:
            _STEPS.append({k: p.detach().clone() for k, p in net.module_.named_parameters()})


@pytest.mark.parametrize("method", ["warm_start", "partial_fit"])
def test_averaging_spans_calls_and_training_resumes_from_the_raw_weights(method):
    X = np.random.default_rng(1).normal(size=(64, 3))
    decay = 0.9
    de = VAEDensityEstimator(
        n_components=2, hidden_layer_sizes=(8,), batch_size=16, early_stopping=False, max_iter=1,
        warm_start=True, ema_decay=decay, random_state=0, callbacks=[_RecordWeightsGlobally()],
    )
    _STEPS.clear()
    de.fit(X)
    first_call_end = {k: p.detach().clone() for k, p in de.net_.module_.named_parameters()}
    getattr(de, "fit" if method == "warm_start" else "partial_fit")(X)
    assert len(_STEPS) == 8
    weights = np.array([decay ** (len(_STEPS) - 1 - t) for t in range(len(_STEPS))])
    weights /= weights.sum()
    for name, p in de.net_.module_.named_parameters():
        expected = sum(w * step[name].double() for w, step in zip(weights, _STEPS))
        torch.testing.assert_close(p.detach().double(), expected, rtol=1e-5, atol=1e-6)
    # Averaging never changes the steps: the second call resumes from the raw
    # weights of the first call's last step, as it does without averaging.
    averaged_steps = list(_STEPS)
    _STEPS.clear()
    raw = clone(de).set_params(ema_decay=0.0).fit(X)
    getattr(raw, "fit" if method == "warm_start" else "partial_fit")(X)
    for ours, theirs in zip(averaged_steps, _STEPS, strict=True):
        for name in ours:
            torch.testing.assert_close(ours[name], theirs[name], rtol=0, atol=0)
    assert not torch.equal(first_call_end["encoder_head.bias"], averaged_steps[3]["encoder_head.bias"])


def test_the_training_loss_is_the_negative_bound_with_beta_in_training_only():
    net = VAENet(VAEModule, module__n_features=2, module__n_components=1, beta=3.0)
    log_px, kl, log_det = torch.tensor([[-1.0, -2.0]]), torch.tensor([[0.5, 0.25]]), torch.tensor([0.1, -0.3])
    # One draw: the ELBO, log p(y|z) - beta * KL, plus the data map's log-Jacobian.
    train = net.get_loss((log_px, kl, log_det), None, training=True)
    valid = net.get_loss((log_px, kl, log_det), None, training=False)
    assert float(train) == pytest.approx(float(-(log_px[0] - 3.0 * kl[0] + log_det).mean()))
    assert float(valid) == pytest.approx(float(-(log_px[0] - kl[0] + log_det).mean()))
    # K draws: IWAE_K = log (1/K) sum_k exp(log w_k), with beta on log q - log p(z).
    log_px, kl = torch.randn(3, 2), torch.rand(3, 2)
    iwae = torch.logsumexp(log_px - 3.0 * kl, dim=0) - np.log(3)
    assert float(net.get_loss((log_px, kl, log_det), None, training=True)) == pytest.approx(
        float(-(iwae + log_det).mean()), rel=1e-6
    )


def test_training_with_k_draws_computes_k_importance_weights_per_row():
    X = np.random.default_rng(0).normal(size=(64, 3))
    de = VAEDensityEstimator(n_training_importance_samples=4, beta=2.0, n_components=2, hidden_layer_sizes=(8,),
                             max_iter=1, random_state=0).fit(X)
    net = de.net_
    assert (net.n_draws, net.beta) == (4, 2.0)
    terms = net.infer(ModelSpaceRows.from_data(net.module_, X)[:16])
    assert terms.log_px.shape == terms.kl.shape == (4, 16)
    # With K > 1 the "kl" terms are per-draw log q(z_k|y) - log p(z_k), which take both signs.
    assert (terms.kl < 0).any() and (terms.kl > 0).any()
