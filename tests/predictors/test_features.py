from __future__ import annotations

import numpy as np
import pytest

import spaces
from predictors import FeaturePipeline
from prednas.errors import PredNASError, UnknownNameError


def test_encodings_any_space():
    for name in ("nb201", "blocks1d"):
        space = spaces.get(name)
        rng = np.random.default_rng(0)
        archs = [space.sample(rng) for _ in range(5)]
        for enc in ("onehot", "path"):
            pipe = FeaturePipeline(name, enc)
            X = pipe.transform(archs)
            assert X.shape == (5, len(pipe.feature_names))
            assert np.all(np.isfinite(X))
        X2 = pipe.transform([str(a) for a in archs])  # strings work too
        np.testing.assert_array_equal(X2, pipe.transform(archs))


def test_proxy_table_columns_and_missing_are_nan(nb201_graph_data):
    pipe, archs, _ = nb201_graph_data
    X = pipe.transform(archs[:4])
    assert pipe.feature_names[-1] == "proxy:fake"
    assert np.all(np.isfinite(X))
    other = spaces.get("nb201").parse(
        "|none~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    if other not in pipe.proxy_table:
        assert np.isnan(pipe.transform([other])[0, -1])


def test_supernet_column_and_graphs():
    class FakeSupernet:
        calls = 0

        def score(self, archs):
            FakeSupernet.calls += 1
            return np.array([len(str(a)) for a in archs], float)

    space = spaces.get("nb201")
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(6)]
    pipe = FeaturePipeline(space, "onehot", supernet=FakeSupernet())
    X = pipe.transform(archs)
    assert pipe.feature_names[-1] == "supernet"
    np.testing.assert_array_equal(X[:, -1], [len(str(a)) for a in archs])
    pipe.transform(archs)
    assert FakeSupernet.calls == 1  # cached
    G = pipe.graphs(archs)
    assert G[0].u.shape == (1, 1) and G[0].flat.shape == (1, X.shape[1])


def test_live_proxies_on_task(synthetic_image_task):
    proxies = pytest.importorskip("proxies")
    if not hasattr(proxies, "score_arch"):
        pytest.skip("proxies.score_arch not available yet")
    space = spaces.get("nb201")
    pipe = FeaturePipeline(space, None, proxies=["nwot"], task=synthetic_image_task,
                           proxy_batch_size=16, device="cpu", build_kwargs={"C": 4, "N": 1})
    archs = [space.default_arch()]
    X = pipe.transform(archs)
    assert X.shape == (1, 1)


def test_bad_config():
    with pytest.raises(UnknownNameError):
        FeaturePipeline("nb201", "onehott")
    with pytest.raises(PredNASError, match="no features"):
        FeaturePipeline("nb201", None)
    with pytest.raises(UnknownNameError):
        FeaturePipeline("nb2011")


def test_named_supernet_features_columns_and_config():
    class FakeScorer:
        feature_names = ("supernet_acc", "supernet_neg_loss", "sigeo_zico", "sigeo_fr",
                         "sigeo_neg_loss", "sigeo")
        calls: list = []

        def score(self, archs):
            return self.features(archs, ["supernet_acc"])[:, 0]

        def features(self, archs, names=None):
            FakeScorer.calls.append(list(names))
            cols = [self.feature_names.index(n) for n in names]
            return np.array([[len(str(a)) + c for c in cols] for a in archs], float)

    space = spaces.get("nb201")
    archs = [space.sample(np.random.default_rng(i)) for i in range(4)]
    pipe = FeaturePipeline(space, None, supernet=FakeScorer(),
                           supernet_features=("sigeo", "inherited_acc"))
    assert pipe.feature_names == ["supernet:sigeo", "supernet:supernet_acc"]
    X = pipe.transform(archs)
    np.testing.assert_array_equal(X, [[len(str(a)) + 5, len(str(a))] for a in archs])
    pipe.transform(archs)
    assert FakeScorer.calls == [["sigeo", "supernet_acc"]]  # one call, then cached
    cfg = pipe.config()
    assert cfg["supernet_features"] == ["sigeo", "supernet_acc"]
    back = FeaturePipeline.from_config(cfg, supernet=FakeScorer())
    assert back.feature_names == pipe.feature_names
    plain = FeaturePipeline(space, None, supernet=FakeScorer())  # the old single column
    assert plain.feature_names == ["supernet"] and plain.config()["supernet_features"] is None
    with pytest.raises(UnknownNameError, match="sigeo_fr"):
        FeaturePipeline(space, None, supernet=FakeScorer(), supernet_features=["sigeo_rf"])
    with pytest.raises(PredNASError, match="no supernet"):
        FeaturePipeline(space, "onehot", supernet_features=["sigeo"])
