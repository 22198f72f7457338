from __future__ import annotations

import json

import numpy as np
import pytest

import predictors
from predictors import EnsemblePredictor, FeaturePipeline, GNNPredictor, XGBPredictor
from prednas.errors import IncompatibleArtifactError, InvalidParameterError, NotFittedError, PredNASError

#: one small configuration per registered predictor (and per XGBoost objective)
CASES = {
    "xgb": lambda: XGBPredictor(n_estimators=15, random_state=0),
    "xgb-rank": lambda: XGBPredictor(objective="rank", n_estimators=15, random_state=0),
    "xgb-ndcg": lambda: XGBPredictor(objective="rank:ndcg", n_estimators=15, random_state=0),
    "ridge": lambda: predictors.RidgePredictor(alphas=(0.5, 5.0)),
    "gnn": lambda: GNNPredictor(hidden=8, layers=1, n_steps=15, random_state=0),
    "ensemble": lambda: EnsemblePredictor(
        members=["xgb", XGBPredictor(objective="rank", n_estimators=10),
                 GNNPredictor(hidden=8, layers=1, n_steps=10), "ridge"], random_state=0),
}


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


def test_every_registered_predictor_has_a_round_trip_case():
    covered = {name.split("-")[0] for name in CASES}
    assert set(predictors.list_predictors()) <= covered


@pytest.mark.parametrize("name", sorted(CASES))
def test_round_trip_predicts_exactly_the_same(tmp_path, nb201_graph_data, monkeypatch, name):
    pipe, archs, y = nb201_graph_data
    pipe = FeaturePipeline("nb201", "onehot")
    model = CASES[name]()
    fit_in = pipe.inputs_for(model, archs[:40])
    X_new = pipe.inputs_for(model, archs[40:80])
    model.fit(fit_in, y[:40])
    path = predictors.save(model, tmp_path / f"{name}.pred", pipeline=pipe)

    import pickle

    def no_pickle(*args, **kwargs):
        raise AssertionError("loading a predictor file must not unpickle anything")

    monkeypatch.setattr(pickle, "loads", no_pickle)
    monkeypatch.setattr(pickle, "load", no_pickle)
    monkeypatch.setattr(pickle, "Unpickler", no_pickle)
    back, pipe2 = predictors.load(path, space="nb201")
    monkeypatch.undo()
    assert type(back) is type(model) and back.is_fitted_
    assert repr(back.get_params(deep=False)) == repr(model.get_params(deep=False))
    np.testing.assert_array_equal(back.predict(pipe2.inputs_for(back, archs[40:80])),
                                  model.predict(X_new))
    if name == "ensemble":
        mean, std = back.predict(X_new, return_std=True)
        np.testing.assert_array_equal(std, model.predict(X_new, return_std=True)[1])


def test_file_is_json_and_library_formats(tmp_path, rising):
    X, y, _, _ = rising
    path = predictors.save(XGBPredictor(n_estimators=5).fit(X, y), tmp_path / "p.pred")
    magic, line, _ = path.read_bytes().split(b"\n", 2)
    header = json.loads(line)
    assert header["format_version"] == predictors.FORMAT_VERSION >= 2
    assert header["predictor"]["class"] == "xgb"
    assert {b["name"].split(".")[1] for b in header["blobs"]} <= {"npy", "ubj", "safetensors",
                                                                   "skops"}


def test_old_newer_truncated_and_directory_files(tmp_path, rising):
    X, y, _, _ = rising
    path = predictors.save(XGBPredictor(n_estimators=5).fit(X, y), tmp_path / "p.pred")
    magic, line, payload = path.read_bytes().split(b"\n", 2)
    header = json.loads(line)
    for version, message in [(1, "old unsafe format.*prednas pretrain"),
                             (99, "99 \\(written by a newer prednas\\)")]:
        other = tmp_path / f"v{version}.pred"
        other.write_bytes(magic + b"\n" + json.dumps(dict(header, format_version=version)).encode()
                          + b"\n" + payload)
        with pytest.raises(IncompatibleArtifactError, match=message):
            predictors.load(other)
    cut = tmp_path / "cut.pred"
    cut.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(IncompatibleArtifactError, match="truncated"):
        predictors.load(cut)
    cut.write_bytes(path.read_bytes()[:len(magic) + 30])
    with pytest.raises(IncompatibleArtifactError, match="truncated"):
        predictors.load(cut)
    with pytest.raises(IncompatibleArtifactError, match="is a directory"):
        predictors.load(tmp_path)


def test_unknown_class_and_unsaveable_state(tmp_path, rising):
    X, y, _, _ = rising
    path = predictors.save(XGBPredictor(n_estimators=5).fit(X, y), tmp_path / "p.pred")
    magic, line, payload = path.read_bytes().split(b"\n", 2)
    header = json.loads(line)
    header["predictor"]["class"] = "os.system"
    path.write_bytes(magic + b"\n" + json.dumps(header).encode() + b"\n" + payload)
    with pytest.raises(IncompatibleArtifactError, match="Unknown predictor 'os.system'"):
        predictors.load(path)

    class Unregistered(XGBPredictor):
        pass

    with pytest.raises(InvalidParameterError, match="register_predictor"):
        predictors.save(Unregistered(n_estimators=5).fit(X, y), tmp_path / "u.pred")
    odd = XGBPredictor(n_estimators=5).fit(X, y)
    odd.extra_ = object()
    with pytest.raises(InvalidParameterError, match="XGBPredictor.extra_"):
        predictors.save(odd, tmp_path / "o.pred")
