from __future__ import annotations

import numpy as np
import pytest

import predictors
from predictors import EnsemblePredictor, FeaturePipeline, GNNPredictor, XGBPredictor
from prednas.errors import IncompatibleArtifactError, NotFittedError, PredNASError


def test_roundtrip_xgb_identical(tmp_path, rising):
    X, y, Xt, _ = rising
    m = XGBPredictor(n_estimators=30, random_state=0).fit(X, y)
    path = predictors.save(m, tmp_path / "p.pkl")
    m2, pipe = predictors.load(path)
    assert pipe is None
    np.testing.assert_array_equal(m.predict(Xt), m2.predict(Xt))
    assert m2.get_params() == m.get_params()


def test_roundtrip_gnn_and_ensemble_with_pipeline(tmp_path, nb201_graph_data):
    pipe, archs, y = nb201_graph_data
    # a pipeline whose table can be restored: onehot encoding only
    pipe = FeaturePipeline("nb201", "onehot")
    G = pipe.graphs(archs[:50])
    for model in (GNNPredictor(hidden=8, layers=1, n_steps=20, random_state=0),
                  EnsemblePredictor(members=[XGBPredictor(n_estimators=20),
                                             GNNPredictor(hidden=8, layers=1, n_steps=20)],
                                    random_state=0)):
        model.fit(G, y[:50])
        path = predictors.save(model, tmp_path / f"{type(model).__name__}.pkl", pipeline=pipe)
        m2, pipe2 = predictors.load(path, space="nb201")
        assert pipe2.feature_names == pipe.feature_names
        np.testing.assert_array_equal(model.predict(G), m2.predict(pipe2.graphs(archs[:50])))


def test_wrong_space_and_missing_features(tmp_path, rising):
    pipe = FeaturePipeline("nb201", "onehot")
    import spaces

    space = spaces.get("nb201")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(30)]
    m = XGBPredictor(n_estimators=10).fit(pipe.transform(archs), np.arange(30.0))
    path = predictors.save(m, tmp_path / "p.pkl", pipeline=pipe)
    with pytest.raises(IncompatibleArtifactError, match="'nb201', not 'blocks1d'"):
        predictors.load(path, space="blocks1d")

    class Fake:
        def score(self, archs):
            return np.zeros(len(archs))

    pipe_sn = FeaturePipeline("nb201", "onehot", supernet=Fake())
    m = XGBPredictor(n_estimators=10).fit(pipe_sn.transform(archs), np.arange(30.0))
    path = predictors.save(m, tmp_path / "sn.pkl", pipeline=pipe_sn)
    with pytest.raises(IncompatibleArtifactError, match="missing.*supernet"):
        predictors.load(path)
    m2, pipe2 = predictors.load(path, supernet=Fake())
    assert pipe2.feature_names[-1] == "supernet"


def test_check_compatible_names_what_differs():
    from predictors.io import check_compatible

    with pytest.raises(IncompatibleArtifactError, match=r"missing features \['proxy:synflow'\]"):
        check_compatible(["a", "proxy:synflow"], ["a"])
    with pytest.raises(IncompatibleArtifactError, match=r"unexpected features \['b'\]"):
        check_compatible(["a"], ["a", "b"])


def test_corrupted_and_foreign_files(tmp_path, rising):
    X, y, _, _ = rising
    foreign = tmp_path / "foreign.pkl"
    foreign.write_bytes(b"not a predictor at all")
    with pytest.raises(PredNASError, match="not a prednas predictor"):
        predictors.load(foreign)
    path = predictors.save(XGBPredictor(n_estimators=5).fit(X, y), tmp_path / "p.pkl")
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    bad = tmp_path / "bad.pkl"
    bad.write_bytes(bytes(data))
    with pytest.raises(PredNASError, match="corrupted"):
        predictors.load(bad)
    trunc = tmp_path / "trunc.pkl"
    trunc.write_bytes(path.read_bytes()[:40])
    with pytest.raises(PredNASError):
        predictors.load(trunc)
    with pytest.raises(PredNASError, match="does not exist"):
        predictors.load(tmp_path / "missing.pkl")
    with pytest.raises(NotFittedError):
        predictors.save(XGBPredictor(), tmp_path / "u.pkl")
