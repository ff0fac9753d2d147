"""Speed of skvae next to hand-written torch references, measured side by side in one run.

Every ratio compares runs made in this process, interleaved round by round, so
that a slower or busier machine moves both sides alike. Sections:

1. ``fit``: seconds per epoch of ``VAEDensityEstimator`` against a minimal torch
   loop (one float32 tensor, ``randperm`` and slicing, Adam, the same layers,
   batch size and Gaussian likelihood, one reparameterised draw per row), with
   and without early stopping (the validation pass counted on both sides), and
   PyOD's ``VAE`` with the closest settings it offers. Medians over epochs
   after a warm-up epoch.
2. ``anomaly``: fit + score wall time of skvae and PyOD's ``VAE``, each with its
   library's defaults, on datasets of ``<data-dir>/ad/``.
3. ``score``: ``score_samples`` (IWAE) against a hand-written batched logsumexp
   on the same fitted model and dtype; time per row and draw for several K and
   row counts; peak resident memory.
4. ``throughput``: ``transform`` and ``sample`` of 100,000 rows.
5. ``parallel``: ``GridSearchCV`` wall time with ``n_jobs=1`` and ``n_jobs=2``.
6. ``import``: ``import skvae`` and ``import torch`` in fresh processes.
7. ``busy``: wall time of the detector's fit + score and of
   ``VAEDensityEstimator``'s fit (30 epochs each) on a quiet machine and with another process
   keeping one core busy, with skvae's thread tuning and with torch's thread
   count fixed (``OMP_NUM_THREADS`` set, which turns the tuning off); the
   ratio busy / quiet of each, and tuned / fixed on the quiet machine.

Run from the project root (about 7 minutes on 2 CPU cores, plus the ``busy``
section's)::

    PYTHONPATH=. python benchmarks/bench_speed.py --data-dir ../shared/data
"""

import argparse
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import GridSearchCV, train_test_split
from sklearn.preprocessing import StandardScaler
from skorch.callbacks import Callback
from torch import nn

from skvae import VAEDensityEstimator, VAEOutlierDetector, VAETransformer
from skvae._likelihoods import MIN_SCALE
from skvae._module import MIN_LATENT_SCALE

try:
    from pyod.models.vae import VAE as PyODVAE
except ImportError:  # PyOD is optional: its rows are left out
    PyODVAE = None

HIDDEN = (256, 256)
N_COMPONENTS = 8
BATCH_SIZE = 128
LOG_2PI = math.log(2 * math.pi)
ROOT = Path(__file__).resolve().parents[1]


# -- timing helpers ----------------------------------------------------------------


def _now(device):
    """A timestamp taken after the device has finished its queued work."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter()


def _timed(fn, device="cpu"):
    start = _now(device)
    out = fn()
    return _now(device) - start, out


def _interleaved(runners, rounds):
    """Call each runner once per round, in turn; {name: [result per round]}."""
    results = {name: [] for name in runners}
    for _ in range(rounds):
        for name, run in runners.items():
            results[name].append(run())
    return results


def _peak_rss_mb(fn):
    """Run fn; return (its result, peak resident MB while it ran, resident MB before it).

    On Linux the high-water mark is reset first, so the peak is fn's own; elsewhere
    it is the peak of the whole process so far, and the resident size before is None.
    """
    try:
        Path("/proc/self/clear_refs").write_text("5")
        before = _proc_status_mb("VmRSS")
        out = fn()
        return out, _proc_status_mb("VmHWM"), before
    except OSError:
        import resource

        out = fn()
        return out, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, None


def _proc_status_mb(field):
    status = Path("/proc/self/status").read_text()
    return int(status.split(f"{field}:")[1].split()[0]) / 1024


def _fit_quietly(est, X):
    """est.fit(X) without the ConvergenceWarning of a fixed epoch budget."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X)


def _table(header, rows):
    """A markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


# -- section 1: fit, seconds per epoch ---------------------------------------------


class ReferenceVAE(nn.Module):
    """skvae's Gaussian model written out by hand: the same layers, closed-form terms."""

    def __init__(self, n_features):
        super().__init__()
        enc = [n_features, *HIDDEN]
        dec = [N_COMPONENTS, *HIDDEN[::-1]]
        self.encoder = nn.Sequential(*_mlp(enc), nn.Linear(enc[-1], 2 * N_COMPONENTS))
        self.decoder = nn.Sequential(*_mlp(dec), nn.Linear(dec[-1], n_features))
        self.raw_scale = nn.Parameter(torch.zeros(n_features))

    def forward(self, x):
        """Negative ELBO, mean over the rows of x, one reparameterised draw per row."""
        loc, raw = self.encoder(x).chunk(2, dim=-1)
        scale = F.softplus(raw) + MIN_LATENT_SCALE
        z = loc + scale * torch.randn_like(scale)
        x_scale = F.softplus(self.raw_scale) + MIN_SCALE
        log_px = (-0.5 * ((x - self.decoder(z)) / x_scale) ** 2 - x_scale.log()).sum(-1)
        kl = 0.5 * (loc**2 + scale**2 - 1).sum(-1) - scale.log().sum(-1)
        return -(log_px - 0.5 * x.shape[1] * LOG_2PI - kl).mean()


def _mlp(sizes):
    layers = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        layers += [nn.Linear(n_in, n_out), nn.ReLU()]
    return layers


def reference_fit(X, *, epochs, early_stopping, device, seed, fused=None):
    """Seconds per epoch of the hand-written loop (an epoch ends after validation)."""
    torch.manual_seed(seed)
    data = torch.as_tensor(StandardScaler().fit_transform(X), dtype=torch.float32, device=device)
    order = torch.randperm(len(data), device=device)
    n_valid = int(0.1 * len(data)) if early_stopping else 0
    train, valid = data[order[n_valid:]], data[order[:n_valid]]
    model = ReferenceVAE(X.shape[1]).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, fused=fused)
    stamps, best = [], math.inf
    for _ in range(epochs):
        for rows in torch.randperm(len(train), device=device).split(BATCH_SIZE):
            loss = model(train[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if n_valid:
            with torch.no_grad():
                total = sum(model(x).item() * len(x) for x in valid.split(BATCH_SIZE))
            best = min(best, total / n_valid)
        stamps.append(_now(device))
    return np.diff(stamps)


class EpochEnds(Callback):
    """Records a timestamp at each epoch end, after every callback listed before it."""

    def __init__(self, device="cpu"):
        self.device = device

    def initialize(self):
        self.stamps_ = []
        return self

    def on_epoch_end(self, net, **kwargs):
        self.stamps_.append(_now(self.device))


def skvae_fit(X, *, epochs, early_stopping, device, seed):
    """Seconds per epoch of VAEDensityEstimator with the reference's settings."""
    est = VAEDensityEstimator(
        N_COMPONENTS,
        hidden_layer_sizes=HIDDEN,
        activation="relu",
        likelihood="gaussian",
        prior="normal",  # the reference's N(0, I)
        n_training_importance_samples=1,  # the reference's ELBO with one draw
        learning_rate="constant",
        learning_rate_init=1e-3,
        batch_size=BATCH_SIZE,
        max_iter=epochs,
        early_stopping=early_stopping,
        n_iter_no_change=epochs,
        tol=0.0,
        device=device,
        random_state=seed,
        callbacks=[("epoch_ends", EpochEnds(device))],
    )
    _fit_quietly(est, X)
    return np.diff(dict(est.net_.callbacks_)["epoch_ends"].stamps_)


def pyod_fit(X, *, epochs, device, seed):
    """Seconds per epoch of PyOD's VAE with the settings closest to the reference's."""
    model = PyODVAE(
        epoch_num=epochs,
        batch_size=BATCH_SIZE,
        encoder_neuron_list=list(HIDDEN),
        decoder_neuron_list=list(HIDDEN[::-1]),
        latent_dim=N_COMPONENTS,
        dropout_rate=0.0,
        optimizer_params={"weight_decay": 0.0},
        device=device,
        random_state=seed,
        verbose=0,
    )
    stamps = []
    model.epoch_update = lambda: stamps.append(_now(device))  # PyOD's per-epoch hook
    model.fit(X)
    return np.diff(stamps)


def synthetic(n_samples, n_features=64, seed=0):
    """Rows of a nonlinear 8-factor model: tanh(Z A) B plus noise."""
    rng = np.random.default_rng(seed)
    Z = rng.normal(size=(n_samples, 8))
    hidden = np.tanh(Z @ rng.normal(size=(8, 32)))
    return hidden @ rng.normal(size=(32, n_features)) / 4 + 0.1 * rng.normal(size=(n_samples, n_features))


def fit_section(datasets, *, device, rounds):
    """Table rows: seconds per epoch and ratio to the reference of the same round."""
    rows = []
    for name, (X, epochs) in datasets.items():
        for early in (False, True):
            kw = dict(epochs=epochs, early_stopping=early, device=device, seed=0)
            runners = {
                "reference torch loop": lambda: reference_fit(X, **kw),
                "skvae VAEDensityEstimator": lambda: skvae_fit(X, **kw),
                "reference, fused Adam": lambda: reference_fit(X, fused=True, **kw),
            }
            if PyODVAE is not None and not early:
                runners["PyOD VAE (closest settings)"] = lambda: pyod_fit(
                    X, epochs=epochs, device=device, seed=0
                )
            times = _interleaved(runners, rounds)
            for method, per_round in times.items():
                median = np.median(np.concatenate(per_round))
                ratios = [_paired_ratio(per_round, times[ref]) for ref in list(runners)[::2]]
                n = sum(len(t) for t in per_round)
                rows.append((name, len(X), early, method, f"{median:.4f}", n, *(f"{r:.2f}" for r in ratios)))
    header = ("data", "rows", "early_stopping", "method", "s/epoch", "epochs", "x reference",
              "x reference, fused Adam")
    return _table(header, rows)


def _paired_ratio(times, reference_times):
    """Median over rounds of (median epoch time / the reference's median in that round)."""
    return np.median([np.median(t) / np.median(r) for t, r in zip(times, reference_times)])


# -- section 2: anomaly detection with each library's defaults ---------------------


def anomaly_section(data_dir, names, *, device):
    """Fit + score seconds with defaults (ADBench split, seed 0), and ROC AUC."""
    rows, totals = [], {}
    methods = _anomaly_methods(device)
    warm_up = np.random.default_rng(0).normal(size=(256, 4))
    for fit, score in methods.values():  # first calls pay one-off costs (lazy imports, allocators)
        score(fit(warm_up), warm_up)
    for name in names:
        data = np.load(Path(data_dir) / "ad" / f"{name}.npz")
        X_train, X_test, _, y_test = train_test_split(
            data["X"], data["y"], test_size=0.3, stratify=data["y"], random_state=0
        )
        scaler = StandardScaler().fit(X_train)
        X_train, X_test = scaler.transform(X_train), scaler.transform(X_test)
        for method, (fit, score) in methods.items():
            fit_s, model = _timed(lambda: fit(X_train), device)
            score_s, scores = _timed(lambda: score(model, X_test), device)
            totals[method] = totals.get(method, 0.0) + fit_s + score_s
            auc = roc_auc_score(y_test, scores)
            seconds = (f"{fit_s:.2f}", f"{score_s:.2f}", f"{fit_s + score_s:.2f}")
            rows.append((name, X_train.shape, method, *seconds, f"{auc:.3f}"))
    rows += [("all", "", method, "", "", f"{total:.2f}", "") for method, total in totals.items()]
    return _table(("data", "train shape", "method", "fit s", "score s", "total s", "ROC AUC"), rows)


def _anomaly_methods(device):
    """{name: (fit(X) -> model, score(model, X) -> anomaly scores, higher = more anomalous)}."""

    methods = {
        "skvae VAEOutlierDetector defaults": (
            lambda X: _fit_quietly(VAEOutlierDetector(random_state=0, device=device), X),
            lambda m, X: -m.score_samples(X),
        )
    }
    if PyODVAE is not None:
        methods["PyOD VAE defaults"] = (
            lambda X: PyODVAE(device=device, verbose=0).fit(X),
            lambda m, X: m.decision_function(X),
        )
    return methods


# -- section 3: score_samples against a batched logsumexp ----------------------------


def reference_log_marginal(est, X, n_draws, *, row_draws_per_chunk=2**14):
    """IWAE_K by hand on est's fitted module: closed-form terms, logsumexp per row chunk."""
    module = est.net_.module_
    # The data map of a Gaussian fit without bounds: one standardisation.
    shift, scale_x = module.data_map.step0_loc, module.data_map.step0_scale
    device = shift.device
    # skvae's draws (the same common random numbers), so the two can be compared row by row.
    eps = torch.randn(n_draws, est.n_components, generator=torch.Generator().manual_seed(est._seed))
    out = []
    with torch.inference_mode():
        y = ((torch.as_tensor(X, device=device) - shift) / scale_x).float()
        x_scale = F.softplus(module.raw_scale) + MIN_SCALE
        const = -x_scale.log().sum() - 0.5 * X.shape[1] * LOG_2PI - scale_x.log().sum()
        e = eps.to(device)[:, None, :]
        for y_chunk in y.split(max(1, row_draws_per_chunk // n_draws)):
            loc, raw = module.encoder_head(module.encoder(y_chunk)).chunk(2, dim=-1)
            scale = F.softplus(raw) + MIN_LATENT_SCALE
            z = loc + scale * e
            mean = module.decoder_head(module.decoder(z))
            log_px = -0.5 * (((y_chunk - mean) / x_scale) ** 2).sum(-1)
            # log p(z) - log q(z|x), with (z - loc) / scale = eps.
            log_ratio = -0.5 * (z**2 - e**2).sum(-1) + scale.log().sum(-1)
            out.append(torch.logsumexp(log_px + log_ratio, dim=0) - math.log(n_draws))
        return (torch.cat(out).double() + const.double()).cpu().numpy()


def score_section(est, X, *, rounds):
    """Table: reference vs skvae on (rows, K) pairs; plus agreement and peak memory."""
    rows = []
    for n_rows, n_draws in [(10_000, 1000), (1_000, 1000), (10_000, 100), (10_000, 10)]:
        x = X[:n_rows]
        est.set_params(n_importance_samples=n_draws)
        times = _interleaved(
            {
                "reference": lambda: _timed(lambda: reference_log_marginal(est, x, n_draws)),
                "skvae": lambda: _timed(lambda: est.score_samples(x)),
            },
            rounds if n_rows * n_draws <= 10**6 else 1,
        )
        ref_s = np.median([t for t, _ in times["reference"]])
        sk_s = np.median([t for t, _ in times["skvae"]])
        gap = np.max(np.abs(times["reference"][0][1] - times["skvae"][0][1]))
        per_draw = sk_s / (n_rows * n_draws) * 1e6
        rows.append((n_rows, n_draws, f"{ref_s:.3f}", f"{sk_s:.3f}", f"{sk_s / ref_s:.2f}", f"{per_draw:.3f}",
                     f"{gap:.1e}"))
    est.set_params(n_importance_samples=1000)
    _, peak, before = _peak_rss_mb(lambda: est.score_samples(X[:10_000]))
    header = ("rows", "K", "reference s", "skvae s", "x reference", "skvae us per row*K", "max |diff| nats")
    note = f"\n\nPeak RSS of the process while scoring 10,000 rows with K=1000: {peak:.0f} MB"
    if before is not None:
        note += f" ({peak - before:.0f} MB above the {before:.0f} MB resident before the call)"
    return _table(header, rows) + note


# -- section 4: transform and sample throughput -------------------------------------


def throughput_section(X, *, device, rounds):
    """Table: seconds and rows per second of transform, inverse_transform and sample."""
    vt = VAETransformer(N_COMPONENTS, hidden_layer_sizes=HIDDEN, max_iter=1, device=device, random_state=0)
    _fit_quietly(vt, X)
    rows = []
    for name, fn in [
        ("transform", lambda: vt.transform(X)),
        ("inverse_transform", lambda: vt.inverse_transform(vt.transform(X[:1]).repeat(len(X), 0))),
        ("sample", lambda: vt.sample(len(X), random_state=0)),
    ]:
        seconds = np.median([_timed(fn, device)[0] for _ in range(rounds)])
        rows.append((name, len(X), f"{seconds:.3f}", f"{len(X) / seconds:,.0f}"))
    return _table(("method", "rows", "seconds", "rows/s"), rows)


# -- section 5: GridSearchCV in parallel --------------------------------------------


def parallel_section(X):
    """GridSearchCV wall time: serial; loky workers with 1 (the default) or 2 torch threads; threads."""
    from joblib import parallel_config

    grid = {"n_components": [2, 4], "beta": [0.5, 1.0]}
    est = VAEDensityEstimator(hidden_layer_sizes=(128, 128), max_iter=60, early_stopping=False, random_state=0)
    configs = [
        ("n_jobs=1", 1, {}),
        ("n_jobs=2, loky (1 torch thread per worker)", 2, {"backend": "loky"}),
        ("n_jobs=2, loky with inner_max_num_threads=2", 2, {"backend": "loky", "inner_max_num_threads": 2}),
        ("n_jobs=2, threading (2 torch threads per thread)", 2, {"backend": "threading"}),
    ]
    rows = []
    for label, n_jobs, config in configs:
        with parallel_config(**config):
            seconds, _ = _timed(lambda: _fit_quietly(GridSearchCV(est, grid, cv=3, n_jobs=n_jobs), X))
        rows.append((label, 12, f"{seconds:.1f}"))
    return _table(("GridSearchCV on digits", "fits", "wall s"), rows)


# -- section 6: import time ---------------------------------------------------------


def import_section(repeats=5):
    """Median import seconds in fresh interpreters: skvae, torch, and skvae's dependencies together."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    statements = ["import torch", "import sklearn.base, sklearn.preprocessing", "import skorch",
                  "import torch, sklearn.base, sklearn.preprocessing, skorch", "import skvae"]
    rows = []
    for statement in statements:
        code = f"import time; t = time.perf_counter(); {statement}; print(time.perf_counter() - t)"
        runs = [subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
                for _ in range(repeats)]
        times = [float(run.stdout) for run in runs]
        rows.append((statement, f"{np.median(times):.2f}"))
    return _table(("statement", f"seconds (median of {repeats} fresh processes)"), rows)


# -- section 7: a busy machine ---------------------------------------------------------


def busy_section(data_dir, *, rounds):
    """Seconds quiet and with one core taken, thread tuning on and off; medians over rounds."""
    # A fixed number of epochs, so that every setting does the same work (with
    # early stopping a different thread count can stop at another epoch).
    fixed = dict(max_iter=30, early_stopping=False, random_state=0)
    X_digits = load_digits().data
    cases = {"VAEDensityEstimator fit, digits": (lambda: VAEDensityEstimator(**fixed), X_digits, None)}
    for name in ("stamps", "magic.gamma"):
        data = np.load(Path(data_dir) / "ad" / f"{name}.npz")
        X_train, X_test = train_test_split(
            StandardScaler().fit_transform(data["X"]), test_size=0.3, stratify=data["y"], random_state=0
        )
        cases[f"VAEOutlierDetector fit + score, {name}"] = (lambda: VAEOutlierDetector(**fixed), X_train, X_test)
    _fit_quietly(VAEDensityEstimator(max_iter=2, random_state=0), X_digits[:256])  # one-off costs
    settings = [(busy, tuned) for busy in (False, True) for tuned in (True, False)]
    rows = []
    for case, (make, X_train, X_test) in cases.items():
        seconds = {setting: [] for setting in settings}
        for _ in range(rounds):
            for busy, tuned in settings:
                seconds[busy, tuned].append(_busy_run(make, X_train, X_test, busy=busy, tuned=tuned))
        med = {setting: float(np.median(times)) for setting, times in seconds.items()}
        rows.append((
            case, *(f"{med[setting]:.2f}" for setting in settings),
            f"{med[True, True] / med[False, True]:.2f}", f"{med[True, False] / med[False, False]:.2f}",
            f"{med[False, True] / med[False, False]:.2f}",
        ))
    header = ("case", "quiet tuned s", "quiet fixed s", "busy tuned s", "busy fixed s",
              "busy/quiet tuned", "busy/quiet fixed", "tuned/fixed quiet")
    return _table(header, rows)


def _busy_run(make, X_train, X_test, *, busy, tuned):
    """Wall seconds of make().fit(X_train) (and score_samples(X_test)), beside a spinning process if busy."""
    previous = os.environ.get("OMP_NUM_THREADS")
    if not tuned:  # skvae leaves a count set in the environment alone; torch's own stays as it is
        os.environ["OMP_NUM_THREADS"] = str(torch.get_num_threads())
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if busy else None
    try:
        if spinner is not None:
            time.sleep(0.5)  # let it start spinning
        start = time.perf_counter()
        est = _fit_quietly(make(), X_train)
        if X_test is not None:
            est.score_samples(X_test)
        return time.perf_counter() - start
    finally:
        if spinner is not None:
            spinner.kill()
            spinner.wait()
        if previous is None:
            os.environ.pop("OMP_NUM_THREADS", None)
        else:
            os.environ["OMP_NUM_THREADS"] = previous


# -- main ---------------------------------------------------------------------------

SECTIONS = ("fit", "anomaly", "score", "throughput", "parallel", "import", "busy")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--device", default="cpu", help="'cpu' or 'cuda'")
    parser.add_argument("--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions per measurement")
    parser.add_argument("--anomaly-datasets", nargs="+", default=None, help="names in <data-dir>/ad/ (default: all)")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device={args.device}\n")
    big = synthetic(100_000)
    for section in args.sections:
        print(f"## {section}\n")
        print(_run_section(section, args, big), "\n", flush=True)
    print(f"Total: {time.perf_counter() - start:.0f} s")


def _run_section(section, args, big):
    if section == "fit":
        datasets = {"digits": (load_digits().data, 12), "synthetic": (big, 4)}
        return fit_section(datasets, device=args.device, rounds=args.rounds)
    if section == "anomaly":
        found = sorted(path.stem for path in (Path(args.data_dir) / "ad").glob("*.npz"))
        return anomaly_section(args.data_dir, args.anomaly_datasets or found, device=args.device)
    if section == "score":
        # The reference computes a Gaussian decoder's log-density in closed form.
        est = VAEDensityEstimator(N_COMPONENTS, hidden_layer_sizes=HIDDEN, likelihood="gaussian", prior="normal",
                                  activation="relu", max_iter=2, early_stopping=False,
                                  device=args.device, random_state=0)
        return score_section(_fit_quietly(est, big[:20_000]), big[20_000:], rounds=args.rounds)
    if section == "throughput":
        return throughput_section(big, device=args.device, rounds=args.rounds)
    if section == "parallel":
        return parallel_section(load_digits().data)
    if section == "busy":
        return busy_section(args.data_dir, rounds=args.rounds)
    return import_section()


if __name__ == "__main__":
    main()
