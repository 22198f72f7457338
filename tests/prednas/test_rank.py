from __future__ import annotations

import numpy as np
import pytest

import predictors
import prednas
import spaces
from predictors import FeaturePipeline, XGBPredictor
from prednas.errors import IncompatibleArtifactError, PredNASError


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    space = spaces.get("nb201")
    rng = np.random.default_rng(0)
    archs = list({str(a): a for a in (space.sample(rng) for _ in range(150))}.values())
    y = np.array([sum(op == "nor_conv_3x3" for op in a.ops) for a in archs], float)
    y += rng.normal(scale=0.3, size=len(y))
    pipe = FeaturePipeline(space, "onehot")
    model = XGBPredictor(n_estimators=50, random_state=0).fit(pipe.transform(archs), y)
    path = predictors.save(model, tmp_path_factory.mktemp("rank") / "p.pkl", pipeline=pipe)
    return space, archs, model, path


def test_rank_object_and_file(fitted):
    space, archs, model, path = fitted
    ranked = prednas.rank([str(a) for a in archs[:40]], space, predictor=model)
    assert len(ranked) == 40
    scores = [s for _, s in ranked]
    assert scores == sorted(scores, reverse=True)
    assert all(space.is_arch(a) for a, _ in ranked)
    from_file = prednas.rank(archs[:40], "nb201", predictor=str(path))
    assert [str(a) for a, _ in from_file] == [str(a) for a, _ in ranked]
    best = ranked[0][0]
    convs = [sum(op == "nor_conv_3x3" for op in a.ops) for a in archs[:40]]
    assert sum(op == "nor_conv_3x3" for op in best.ops) >= np.percentile(convs, 75)


def test_rank_batched_matches_unbatched(fitted):
    space, archs, model, _ = fitted
    a = prednas.rank(archs, space, predictor=model, batch_size=7)
    b = prednas.rank(archs, space, predictor=model)
    assert [(str(x), s) for x, s in a] == [(str(x), s) for x, s in b]


def test_rank_errors(fitted):
    space, archs, model, path = fitted
    with pytest.raises(IncompatibleArtifactError, match="'nb201', not 'blocks1d'"):
        prednas.rank(["conv5:64|conv5:64"], "blocks1d", predictor=str(path))
    with pytest.raises(IncompatibleArtifactError, match="expects"):
        prednas.rank(archs[:3], space, predictor=model,
                     pipeline=FeaturePipeline(space, "path"))
    with pytest.raises(PredNASError):
        prednas.rank(["not an arch"], space, predictor=model)
    assert prednas.rank([], space, predictor=model) == []


def test_cli_rank(fitted, tmp_path, capsys):
    from prednas.cli import main

    space, archs, model, path = fitted
    f = tmp_path / "archs.txt"
    f.write_text("\n".join(str(a) for a in archs[:5]) + "\n")
    assert main(["rank", "--space", "nb201", "--predictor", str(path), str(f)]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 5 and out[0].startswith("1\t")
    assert main(["rank", "--space", "nb201", "--predictor", str(tmp_path / "nope.pkl"),
                 str(f)]) == 2


def test_cli_pretrain(tmp_path, capsys):
    from prednas.cli import main

    out = tmp_path / "p.pkl"
    assert main(["pretrain", "--n-train", "30", "--n-test", "200", "--predictor", "xgb",
                 "--seed", "1", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "Spearman" in text and "Kendall" in text and "top-5%" in text
    model, pipe = predictors.load(out, space="nb201")
    assert pipe.space.name == "nb201"
