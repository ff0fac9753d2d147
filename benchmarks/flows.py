"""zuko's normalizing flows as density peers, scored in the space of the data.

Shared by ``bench_family.py`` and ``bench_density.py``. ``zuko`` is an
optional extra (``pip install zuko``); without it ``zuko`` is None here and
the scripts leave the flows out.
"""

import copy

import numpy as np
import torch

try:
    import zuko
except ImportError:
    zuko = None

# 5 transforms with hidden layers of (256, 256), for every data set.
FLOW_PARAMS = {"transforms": 5, "hidden_features": (256, 256)}


class Flow:
    """A zuko flow on standardised data, scored in the space of the data.

    Parameters
    ----------
    kind : {'nsf', 'maf'}
    seed : int
        Seeds the weights, the validation split and the batch order.
    max_epochs : int, default=1000
    patience : int, default=20
        Epochs without a better validation score before stopping.
    batch_size : int, default=256
    learning_rate : float, default=1e-3
    """

    def __init__(self, kind, seed, *, max_epochs=1000, patience=20, batch_size=256, learning_rate=1e-3):
        self.kind, self.seed, self.max_epochs, self.patience = kind, seed, max_epochs, patience
        self.batch_size, self.learning_rate = batch_size, learning_rate

    def fit(self, X):
        self.mean_, self.scale_ = X.mean(0), X.std(0)
        generator = torch.Generator().manual_seed(self.seed)
        Z = self._standardised(X)[torch.randperm(len(X), generator=generator)]
        n_valid = max(1, len(Z) // 10)
        torch.manual_seed(self.seed)
        cls = zuko.flows.NSF if self.kind == "nsf" else zuko.flows.MAF
        self.flow_ = cls(features=X.shape[1], **FLOW_PARAMS)
        self.n_epochs_ = self._train(Z[n_valid:], Z[:n_valid], generator)
        return self

    def _train(self, train, valid, generator):
        """Adam epochs with early stopping; keeps the best epoch's weights. Returns the epochs run."""
        optimizer = torch.optim.Adam(self.flow_.parameters(), lr=self.learning_rate)
        best, best_state, waited = -np.inf, None, 0
        for epoch in range(1, self.max_epochs + 1):
            for batch in train[torch.randperm(len(train), generator=generator)].split(self.batch_size):
                loss = -self.flow_().log_prob(batch).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            score = self._log_prob(valid).mean()
            if score > best:  # False for NaN: a diverged epoch counts as no progress
                best, best_state, waited = score, copy.deepcopy(self.flow_.state_dict()), 0
            elif (waited := waited + 1) >= self.patience:
                break
        if best_state is None:
            raise FloatingPointError(f"{self.kind} diverged in its first epoch")
        self.flow_.load_state_dict(best_state)
        return epoch

    def _standardised(self, X):
        return torch.as_tensor((X - self.mean_) / self.scale_, dtype=torch.float32)

    @torch.no_grad()
    def _log_prob(self, Z):
        return np.concatenate([self.flow_().log_prob(chunk).double().numpy() for chunk in Z.split(4096)])

    def score_samples(self, X):
        """log p(x) in nats in the space of X: the flow's density plus the standardisation's log-Jacobian."""
        return self._log_prob(self._standardised(X)) - np.log(self.scale_).sum()
