"""The demo behind ``python -m skvae`` runs and reports every model."""

import pytest

from skvae._demo import main


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.slow
def test_demo_prints_the_table_and_writes_pngs(tmp_path, capsys):
    pytest.importorskip("matplotlib")
    assert main(["--max-iter", "3", "--output-dir", str(tmp_path), "--quiet"]) == 0
    out = capsys.readouterr().out
    for name in ("skvae VAEDensityEstimator", "GaussianMixture", "KernelDensity", "PCA"):
        assert name in out
    assert (tmp_path / "samples.png").stat().st_size > 0
    assert (tmp_path / "latent.png").stat().st_size > 0
