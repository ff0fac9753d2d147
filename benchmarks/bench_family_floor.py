"""How close a model of the generator's own form gets to the truth on oracle family members.

For each selected member of ``oracles.py``, a model with exactly the
generator's form (z ~ N(0, I_2), x = h(z A + b) C + e with the member's
activation h, 32 hidden units and one noise scale; for ``"mixture"``, two such
maps weighted 1/2) is started at the true weights and fitted to the training
rows by maximum likelihood, through the IWAE bound (Burda et al. 2016; K draws
from an MLP encoder, float64):

1. the encoder alone is trained with the true map fixed, so that the bound is
   tight at the start;
2. encoder and map are trained together (full-batch Adam).

The fitted map's exact log p(x) is then computed by the truth's own
quadrature (``oracles.log_density``) on the test rows and on as many training
rows. The gap to the truth on test rows is what estimating the map's weights
from n rows costs a model that knows everything else; for maximum likelihood
it is about P / (2n) nats per row, with P free parameters (printed beside it).
A negative gap on training rows means the fit scores them above the truth
(it has learned their noise).

Run from the project root (minutes per member; 2,000 training rows and a
32-D mixture take about 20 minutes on 2 CPU cores)::

    PYTHONPATH=. python benchmarks/bench_family_floor.py --members tanh-d8-s0.05-n2000-seed0
    # a smoke run, seconds:
    PYTHONPATH=. python benchmarks/bench_family_floor.py --members tanh-d8-s0.1-n2000-seed0 \\
        --steps 5 --max-test-rows 50
"""

import argparse
import math
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import oracles  # noqa: E402

ACTIVATIONS = {"tanh": torch.tanh, "sin": torch.sin, "softplus": nn.functional.softplus}
LOG_2PI = math.log(2 * math.pi)


class ExactForm(nn.Module):
    """The generator's form with learnable weights, and an encoder proposing z per map.

    Parameters
    ----------
    maps : list of oracles.Branch
        The true maps, the starting point.
    sigma : float
        The true noise scale, the starting point.
    """

    def __init__(self, maps, sigma):
        super().__init__()
        self.activation = ACTIVATIONS[maps[0].shape]
        self.n_maps = len(maps)
        self.A, self.b, self.C = (
            nn.ParameterList([nn.Parameter(torch.tensor(getattr(b, name), dtype=torch.float64)) for b in maps])
            for name in ("A", "b", "C")
        )
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma), dtype=torch.float64))
        n_features = maps[0].C.shape[1]
        self.encoder = nn.Sequential(
            nn.Linear(n_features, 128), nn.Tanh(), nn.Linear(128, 128), nn.Tanh(), nn.Linear(128, 4 * self.n_maps)
        ).double()

    def map_parameters(self):
        return [*self.A, *self.b, *self.C, self.log_sigma]

    def n_free(self):
        """P: the weights of the maps and the noise scale."""
        return sum(p.numel() for p in self.map_parameters())

    def bound(self, X, n_draws):
        """Mean IWAE_K over the rows; for two maps, K draws from each map's proposal (stratified)."""
        out = self.encoder(X).unflatten(-1, (self.n_maps, 4))
        log_w = []
        for k in range(self.n_maps):
            loc, log_scale = out[:, k, :2], out[:, k, 2:].clamp(-8.0, 2.0)
            eps = torch.randn(n_draws, *loc.shape, dtype=X.dtype)
            z = loc + log_scale.exp() * eps
            g = self.activation(z @ self.A[k] + self.b[k]) @ self.C[k]
            log_px = (-0.5 * ((X - g) / self.log_sigma.exp()) ** 2 - self.log_sigma - 0.5 * LOG_2PI).sum(-1)
            log_pz = (-0.5 * z**2 - 0.5 * LOG_2PI).sum(-1)
            log_qz = (-0.5 * eps**2 - log_scale - 0.5 * LOG_2PI).sum(-1)
            # The proposal is the equal mixture of the maps' proposals, each map's
            # draws weighed against the map's own prior share 1/n_maps.
            log_w.append(log_px + log_pz - log_qz - math.log(self.n_maps))
        log_w = torch.cat(log_w, 0)
        return (torch.logsumexp(log_w, 0) - math.log(n_draws)).mean()

    def branches(self, shape):
        """The fitted maps as ``oracles.Branch`` (for the exact log-density)."""
        return [
            oracles.Branch(shape, *(p[k].detach().numpy() for p in (self.A, self.b, self.C)))
            for k in range(self.n_maps)
        ]


def fit(model, X, *, steps, n_draws):
    """Encoder alone for ``steps`` full-batch Adam steps, then encoder and maps together for as many."""
    X = torch.as_tensor(X, dtype=torch.float64)
    phases = [
        torch.optim.Adam(model.encoder.parameters(), lr=1e-3),
        torch.optim.Adam(
            [{"params": model.encoder.parameters(), "lr": 1e-3}, {"params": model.map_parameters(), "lr": 3e-4}]
        ),
    ]
    for optimizer in phases:
        for _ in range(steps):
            optimizer.zero_grad()
            loss = -model.bound(X, n_draws)
            loss.backward()
            optimizer.step()


def run_member(member, args):
    """(P / (2n), gap on test rows, gap on training rows, seconds) for one member."""
    start = time.perf_counter()
    X_train, X_test, logp_test = oracles.load_member(member, max_test_rows=args.max_test_rows)
    maps = oracles.branches(member.shape, member.n_features, member.seed)
    torch.manual_seed(args.seed)  # the encoder's initial weights and the draws
    model = ExactForm(maps, member.sigma)
    fit(model, X_train, steps=args.steps, n_draws=args.n_draws)
    fitted, sigma = model.branches(maps[0].shape), model.log_sigma.detach().exp().item()
    grid = dict(zip(("n_coarse", "refine"), oracles.GRIDS[member.sigma]))
    X_seen = X_train[: len(X_test)]
    gap_test = logp_test.mean() - oracles.log_density(X_test, fitted, sigma, **grid).mean()
    gap_train = (
        oracles.log_density(X_seen, maps, member.sigma, **grid).mean()
        - oracles.log_density(X_seen, fitted, sigma, **grid).mean()
    )
    return model.n_free() / (2 * len(X_train)), gap_test, gap_train, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", nargs="+", required=True, help="as in bench_family.py (oracles.select)")
    parser.add_argument("--steps", type=int, default=2000, help="full-batch Adam steps per phase")
    parser.add_argument("--n-draws", type=int, default=32, help="K of the IWAE bound")
    parser.add_argument("--max-test-rows", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    lines = [
        "| member | P / (2n) | fitted model's gap, test rows | its gap, training rows | s |",
        "|---|---:|---:|---:|---:|",
    ]
    for member in oracles.select(args.members):
        bias, gap_test, gap_train, seconds = run_member(member, args)
        lines.append(f"| {member.name} | {bias:.3f} | {gap_test:.3f} | {gap_train:.3f} | {seconds:.0f} |")
        print(lines[-1], flush=True)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
