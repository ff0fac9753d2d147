import os

import pytest

# scikit-learn runs its array-API input check only when SciPy's array API
# support is on; it must be set before SciPy is first imported.
os.environ.setdefault("SCIPY_ARRAY_API", "1")


@pytest.fixture(autouse=True)
def _thread_count_fixed(request, monkeypatch):
    """Thread tuning off outside tests/test_threads.py.

    It times steps, so on a noisy machine one of two identical fits could move
    to fewer threads and round differently; the tests that compare fits bit
    for bit would then fail for a reason that is not theirs.
    """
    if request.module.__name__.rpartition(".")[2] != "test_threads":
        monkeypatch.setattr("skvae._threads.user_fixed_threads", lambda: True)


def pytest_addoption(parser):
    parser.addoption("--run-slow", action="store_true", help="also run the tests marked slow")


def pytest_collection_modifyitems(config, items):
    # The slow cases run in CI (CI=true) and with --run-slow; a plain local
    # run skips them to stay fast.
    if config.getoption("--run-slow") or os.environ.get("CI"):
        return
    skip = pytest.mark.skip(reason="slow: runs in CI, or with --run-slow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
