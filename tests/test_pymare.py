"""Where PyMARE covers the same ground (DL, ML, REML for an intercept model), we agree."""

import warnings

import numpy as np
import pytest

from metaanalysis.models import rma


@pytest.mark.parametrize("method", ["DL", "ML", "REML"])
def test_agrees_with_pymare(method):
    from pymare import Dataset
    from pymare.estimators import DerSimonianLaird, VarianceBasedLikelihoodEstimator

    rng = np.random.default_rng(7)
    v = rng.uniform(0.01, 0.2, 60)
    y = rng.normal(0.3, 0.3, 60)
    est = DerSimonianLaird() if method == "DL" else VarianceBasedLikelihoodEstimator(method=method)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit_dataset(Dataset(y=y, v=v))
    s = est.summary()
    ours = rma(y, v, method=method)
    assert ours.tau2 == pytest.approx(np.ravel(s.tau2)[0], abs=1e-6)
    assert ours.estimate == pytest.approx(np.ravel(s.fe_params)[0], abs=1e-6)
