"""The skorch internals that ``skvae._skorch_compat`` relies on are still there and behave the same.

Each test here checks one assumption of the shim against skorch itself (a
plain ``NeuralNet`` or ``EarlyStopping``), so that a skorch release that
changes it fails here, by name, rather than somewhere inside a fit.
"""

import inspect
import pickle

import pytest
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import ValidSplit

from skvae._module import VAEModule
from skvae._net import VAENet
from skvae._skorch_compat import CompatNet, StoppingRule, register_cuda_state

# The NeuralNet methods that CompatNet and VAENet override, with the signatures the overrides keep.
OVERRIDDEN = {
    "_set_training": "(self, training=True)",
    "run_single_epoch": "(self, iterator, training, prefix, step_fn, **fit_params)",
    "get_iterator": "(self, dataset, training=False)",
    "partial_fit": "(self, X, y=None, classes=None, **fit_params)",
    "infer": "(self, x, **fit_params)",
    "get_loss": "(self, y_pred, y_true, X=None, training=False)",
    "get_dataset": "(self, X, y=None)",
}


def _data():
    X = torch.randn(12, 2, generator=torch.Generator().manual_seed(0))
    return X, X[:, :1] * 2.0


def _plain_net(**kwargs):
    torch.manual_seed(0)
    options = dict(criterion=torch.nn.MSELoss, max_epochs=3, batch_size=4, lr=0.01, callbacks__print_log=None)
    return NeuralNet(torch.nn.Linear(2, 1), **{**options, **kwargs})


def _vae_net(**kwargs):
    torch.manual_seed(0)
    options = dict(module__n_features=2, module__n_components=1, max_epochs=20, batch_size=4,
                   train_split=None, verbose=0)
    return VAENet(VAEModule, **{**options, **kwargs})


def test_overridden_methods_keep_skorch_signatures():
    overridden = {
        name
        for cls in (CompatNet, VAENet)
        for name, value in vars(cls).items()
        if inspect.isfunction(value) and not name.startswith("__") and hasattr(NeuralNet, name)
    }
    assert overridden == set(OVERRIDDEN)
    for name, signature in OVERRIDDEN.items():
        assert str(inspect.signature(getattr(NeuralNet, name))) == signature, name
        assert str(inspect.signature(getattr(VAENet, name))) == signature, name


def test_partial_fit_override_calls_what_skorch_still_has():
    # CompatNet.partial_fit calls these as skorch's own partial_fit does.
    inspect.signature(NeuralNet.fit_loop).bind(None, "X", "y")
    inspect.signature(NeuralNet.notify).bind(None, "on_train_begin", X="X", y="y")
    net = _plain_net()
    assert net.initialized_ is False
    assert net.initialize().initialized_ is True


def test_fit_loop_leaves_train_begin_and_end_to_partial_fit():
    # CompatNet.partial_fit notifies on_train_begin/end around fit_loop itself.
    events = []

    class Record(Callback):
        def on_train_begin(self, net, **kwargs):
            events.append("begin")

        def on_epoch_end(self, net, **kwargs):
            events.append("epoch")

        def on_train_end(self, net, **kwargs):
            events.append("end")

    net = _plain_net(callbacks=[("record", Record())]).initialize()
    net.fit_loop(*_data())
    assert events == ["epoch"] * 3


def test_loop_calls_the_hooks_the_shim_overrides():
    calls = []
    batches = []

    class Spy(NeuralNet):
        def _set_training(self, training=True):
            calls.append(("mode", training))
            super()._set_training(training)

        def run_single_epoch(self, iterator, training, prefix, step_fn, **fit_params):
            calls.append(("epoch", training, prefix))
            return super().run_single_epoch(iterator, training, prefix, step_fn, **fit_params)

        def get_iterator(self, dataset, training=False):
            calls.append(("iterator", training, type(dataset), getattr(dataset, "indices", None) is not None))
            return super().get_iterator(dataset, training)

        def train_step(self, batch, **fit_params):
            batches.append(batch)
            return super().train_step(batch, **fit_params)

    class SeeBatch(Callback):
        def on_batch_begin(self, net, batch=None, training=False, **kwargs):
            if training:
                batches.append(batch)

    torch.manual_seed(0)
    net = Spy(torch.nn.Linear(2, 1), criterion=torch.nn.MSELoss, max_epochs=2, batch_size=4, lr=0.01,
              train_split=ValidSplit(3), callbacks=[("see", SeeBatch())], callbacks__print_log=None)
    net.fit(*_data())
    # The validation rows reach get_iterator as a torch Subset (get_iterator unwraps it).
    subset = torch.utils.data.Subset
    assert ("iterator", True, subset, True) in calls and ("iterator", False, subset, True) in calls
    epochs = [call for call in calls if call[0] == "epoch"]
    assert epochs == [("epoch", True, "train"), ("epoch", False, "valid")] * 2
    assert ("mode", True) in calls and ("mode", False) in calls
    # A callback's on_batch_begin gets the very batch the training step uses
    # (TrainingNoise changes it there).
    assert len(batches) == 2 * 2 * 2
    assert all(seen is used for seen, used in zip(batches[::2], batches[1::2]))


def test_set_training_is_how_skorch_sets_the_mode():
    # The override skips a walk when the module's mode is already right: skorch
    # must still set the mode through _set_training, and only the module's
    # (the criterion is Identity) must matter.
    modes = []

    class Record(Callback):
        def on_batch_end(self, net, training=False, **kwargs):
            modes.append((training, net.module_.training))

    net = _vae_net(max_epochs=2, callbacks=[("record", Record())], train_split=ValidSplit(3))
    net.fit(torch.randn(12, 2))
    assert {training for training, _ in modes} == {True, False}
    assert all(training == mode for training, mode in modes)


def _stop_run(load_best):
    """A plain net with EarlyStopping that improves only in epoch 1, run by fit_loop; weights per epoch."""
    weights = []

    class Keep(Callback):
        def on_epoch_end(self, net, **kwargs):
            weights.append({k: v.clone() for k, v in net.module_.state_dict().items()})

    rule = EarlyStopping(monitor="train_loss", patience=2, threshold=1e9, threshold_mode="abs",
                         load_best=load_best, sink=lambda _: None)
    net = _plain_net(max_epochs=10, train_split=None, callbacks=[("keep", Keep()), ("stop", rule)]).initialize()
    net.notify("on_train_begin")
    with pytest.raises(KeyboardInterrupt):
        net.fit_loop(*_data())
    return net, rule, weights


def test_early_stopping_signals_by_keyboard_interrupt_and_keeps_the_best_weights():
    net, rule, weights = _stop_run(load_best=True)
    assert len(net.history) == 3 and rule.best_epoch_ == 1 and rule.misses_ == 2
    assert all(torch.equal(rule.best_model_weights_[k], weights[0][k]) for k in weights[0])
    net.notify("on_train_end")  # loads the best weights, the epoch before the last
    assert all(torch.equal(net.module_.state_dict()[k], weights[0][k]) for k in weights[0])
    # StoppingRule turns off load_best during on_epoch_end so that skorch copies nothing.
    _, rule, _ = _stop_run(load_best=False)
    assert rule.best_model_weights_ is None


def test_stopping_rule_ends_training_quietly_with_the_best_weights():
    weights = []

    class Keep(Callback):
        def on_epoch_end(self, net, **kwargs):
            weights.append({k: v.clone() for k, v in net.module_.state_dict().items()})

    rule = StoppingRule(monitor="train_loss", patience=2, threshold=1e9, threshold_mode="abs", load_best=True,
                        sink=lambda _: None)
    net = _vae_net(callbacks=[("keep", Keep()), ("stopping", rule)])
    net.fit(torch.randn(12, 2))
    assert rule.stopped_ and len(net.history) == 3 and rule.best_epoch_ == 1
    assert all(torch.equal(rule.best_weights()[k], weights[0][k]) for k in weights[0])
    assert all(torch.equal(net.module_.state_dict()[k], weights[0][k]) for k in weights[0])


def test_registered_state_is_pickled_apart_for_the_cpu():
    net = _vae_net().initialize()
    net.kept_state_ = {"w": torch.arange(3.0)}
    register_cuda_state(net, "kept_state_")
    register_cuda_state(net, "kept_state_")
    assert net.cuda_dependent_attributes_.count("kept_state_") == 1
    # skorch moves the registered attributes into a blob it loads with a CPU map_location.
    state = net.__getstate__()
    assert "kept_state_" not in state and "__cuda_dependent_attributes__" in state
    restored = pickle.loads(pickle.dumps(net))
    assert torch.equal(restored.kept_state_["w"], torch.arange(3.0))
