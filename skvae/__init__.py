"""scikit-learn estimators backed by variational autoencoders."""

from ._density import VAEDensityEstimator
from ._impute import VAEImputer
from ._outlier import VAEOutlierDetector
from ._persistence import load
from ._transformer import VAETransformer
from ._version import __version__


__all__ = [
    "VAEDensityEstimator",
    "VAEImputer",
    "VAEOutlierDetector",
    "VAETransformer",
    "__version__",
    "load",
]
