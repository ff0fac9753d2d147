"""``python -m skvae``: the demo on scikit-learn's bundled digits."""

from ._demo import main

if __name__ == "__main__":
    raise SystemExit(main())
