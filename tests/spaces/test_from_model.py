"""spaces.from_model: spaces generated from a user's network (examples/ models and tiny ones)."""

from __future__ import annotations

import importlib.util
import pickle
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.data import Data

import spaces
from prednas.errors import InvalidArchitectureError, InvalidParameterError, PredNASError, UnknownNameError

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load_examples():
    spec = importlib.util.spec_from_file_location("prednas_example_models", EXAMPLES / "models.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # importable by name, so that the generated spaces pickle
    spec.loader.exec_module(mod)
    return mod


models = _load_examples()
INPUTS = {"SmallCNN1d": (1, 40), "ConvGRUAttn1d": (1, 40), "ResNet2d": (3, 32, 32)}


@pytest.fixture(scope="module", params=sorted(INPUTS))
def made(request):
    """(model, example input, space) for each example network."""
    torch.manual_seed(0)
    model = getattr(models, request.param)()
    x = torch.randn(2, *INPUTS[request.param])
    return model, x, spaces.from_model(model, x)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


# --------------------------------------------------------------------------------------------
# the example networks
# --------------------------------------------------------------------------------------------
def test_space_basics(made):
    model, x, space = made
    assert isinstance(space, spaces.Space) and spaces.get(space) is space
    assert space.name.startswith(f"from_model:{type(model).__name__}:")
    assert space.trace_mode == "fx" and space.trace_error is None
    assert space.input_shape == tuple(x.shape[1:]) and space.num_classes == 10
    assert len(space.slots) >= 4 and space.size > 1000
    assert "classifier.4" not in {s.name for s in space.slots}  # never the classifier
    assert "fc" not in {s.name for s in space.slots} and "head" not in {s.name for s in space.slots}
    again = spaces.from_model(model, x)
    assert again.name == space.name and str(again.default_arch()) == str(space.default_arch())


def test_text_round_trips(made):
    _, _, space = made
    rng = np.random.default_rng(0)
    for _ in range(200):
        arch = space.sample(rng)
        text = str(arch)
        again = space.parse(text)
        assert again == arch and hash(again) == hash(arch) and str(again) == text
        assert space.canonical(arch) == arch and space.coerce(text) == arch


def test_default_arch_is_the_original_network(made):
    model, x, space = made
    net = space.build(space.default_arch(), space.num_classes, space.input_shape)
    assert n_params(net) == n_params(model)
    assert [n for n, _ in net.named_parameters()] == [n for n, _ in model.named_parameters()]
    net.eval(), model.eval()
    with torch.no_grad():
        assert net(x).shape == model(x).shape == (2, 10)
    # a fresh initialisation, not the user's weights
    assert not all(torch.equal(a, b) for a, b in zip(net.parameters(), model.parameters()))


def test_sampled_archs_build_and_run(made):
    _, x, space = made
    rng = np.random.default_rng(1)
    sizes = set()
    for _ in range(4):
        arch = space.sample(rng)
        net = space.build(arch)
        out = net(x)
        assert out.shape == (2, 10) and torch.isfinite(out).all()
        sizes.add(n_params(net))
    out.sum().backward()
    assert len(sizes) > 1  # choices change the network


def test_build_is_deterministic_for_a_seed_and_leaves_the_model_alone(made):
    model, _, space = made
    before = {k: v.clone() for k, v in model.state_dict().items()}
    arch = space.sample(np.random.default_rng(2))
    nets = []
    for _ in range(2):
        torch.manual_seed(7)
        nets.append(space.build(arch))
    assert all(torch.equal(a, b) for a, b in zip(nets[0].state_dict().values(),
                                                 nets[1].state_dict().values()))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_mutate_changes_exactly_one_slot(made):
    _, _, space = made
    rng = np.random.default_rng(3)
    arch = space.sample(rng)
    nbrs = space.neighbours(arch)
    assert arch not in nbrs and len(set(nbrs)) == len(nbrs)
    assert len(nbrs) == sum(len(s.labels) - 1 for s in space.slots)
    for i in range(100):
        child = space.mutate(arch, rng)
        diff = [a for a, b in zip(arch.choices, child.choices) if a != b]
        assert len(diff) == 1 and child in set(nbrs)
        if i % 10 == 9:  # walk on
            arch = child
            nbrs = space.neighbours(arch)


def test_graph_and_vectors_are_consistent(made):
    _, _, space = made
    rng = np.random.default_rng(4)
    archs = [space.sample(rng) for _ in range(20)]
    n_layers = sum(s.kind != "group" for s in space.slots)
    shapes = set()
    for arch in archs:
        g = space.to_graph(arch)
        assert isinstance(g, Data) and g.num_nodes == n_layers + 2
        assert g.x[:, :len(space.node_types)].sum(1).eq(1).all()
        assert g.edge_index.shape[0] == 2 and int(g.edge_index.max()) < g.num_nodes
        assert set(g.edge_index[0].tolist()) >= {0}  # the input feeds something
        assert (g.num_nodes - 1) in set(g.edge_index[1].tolist())  # the output is fed
        shapes.add(tuple(g.x.shape))
    assert len(shapes) == 1
    for enc in space.encodings:
        v = space.to_vectors(archs, enc)
        assert v.shape[0] == 20 and v.ndim == 2 and np.isfinite(v).all()
        assert len({tuple(r) for r in v}) > 1
    onehot = space.to_vector(space.default_arch())
    assert onehot.sum() == sum(sum(len(o) > 1 for _, o in s.dims) for s in space.slots)
    with pytest.raises(UnknownNameError, match="onehot"):
        space.to_vector(archs[0], "adjacency")


def test_space_pickles(made):
    _, x, space = made
    again = pickle.loads(pickle.dumps(space))
    arch = again.parse(str(space.sample(np.random.default_rng(5))))
    assert again.name == space.name and again.build(arch)(x).shape == (2, 10)


# --------------------------------------------------------------------------------------------
# structure: residual groups, propagation, shape trials, recurrent and attention slots
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return spaces.from_model(models.ResNet2d(), torch.randn(2, 3, 32, 32))


def test_residual_groups_share_one_width(resnet):
    groups = {s.name: s.members for s in resnet.slots if s.kind == "group"}
    assert groups["res@conv1"] == ("conv1", "layer1.0.conv2", "layer1.1.conv2")
    assert set(groups["res@layer2.0.conv2"]) == {"layer2.0.conv2", "layer2.0.shortcut.0",
                                                 "layer2.1.conv2"}
    assert "w0.5" in resnet.slots[0].labels
    # a grouped layer's own slot has no width; the group's choice sets every member's
    assert not any(p.startswith("w") for lab in resnet.slots[1].labels for p in lab.split(","))
    arch = resnet.parse("res@conv1=w0.5|res@layer2.0.conv2=w0.75|layer1.0.conv1=k5,w0.75,sep")
    net = resnet.build(arch)
    mods = dict(net.named_modules())
    assert {mods[n].out_channels for n in groups["res@conv1"]} == {8}
    assert {mods[n].out_channels for n in groups["res@layer2.0.conv2"]} == {24}
    assert mods["bn1"].num_features == 8 and mods["layer2.0.bn2"].num_features == 24
    assert mods["layer1.0.conv1"][1].out_channels == 12  # separable: depthwise then pointwise
    assert mods["layer1.0.conv1"][0].groups == 16 // 2
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_identity_only_where_shapes_allow(resnet):
    ids = {s.name for s in resnet.slots if "id" in s.labels}
    assert ids == {"layer1.0.conv1", "layer1.1.conv1", "layer2.1.conv1", "layer3.1.conv1"}
    arch = resnet.parse("res@conv1=w0.5|layer1.0.conv1=id|layer1.1.conv1=id")
    net = resnet.build(arch)
    assert isinstance(net.layer1[0].conv1, nn.Identity)
    assert net.layer1[0].bn1.num_features == 8  # follows the identity's input
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, 10)


def test_width_change_propagates_to_flatten_linear():
    model = models.SmallCNN1d()
    space = spaces.from_model(model, torch.randn(2, 1, 40))
    net = space.build(space.parse("features.7=k5,w0.5,sep|classifier.1=w0.75"))
    assert net.features[7][1].out_channels == 16 and net.features[8].num_features == 16
    assert net.classifier[1].in_features == 16 * 20 and net.classifier[1].out_features == 48
    assert net.classifier[4].in_features == 48 and net.classifier[4].out_features == 10


class HardCodedView(nn.Module):
    """A user network whose forward hard-codes the channel count (width choices cannot fit) and
    reads a layer's weight (a separable replacement, a Sequential, has none)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv1d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16 * 40, 10)

    def forward(self, x):
        x = F.relu(self.conv2(F.relu(self.conv1(x)))) + 0.0 * self.conv2.weight.mean()
        return self.fc(x.view(x.size(0), 16, 40).reshape(-1, 640))


def test_choices_that_break_the_network_are_not_offered():
    space = spaces.from_model(HardCodedView(), torch.randn(2, 1, 40))
    conv2 = next(s for s in space.slots if s.name == "conv2")
    assert [v for d, v in conv2.dims if d == "width"] in ([], [(1.0,)])
    assert {v["kernel"] for v in conv2.values} == {3, 5, 7}
    assert not any(v.get("sep") for v in conv2.values)
    assert ("conv2", "w0.5") in {(n, c) for n, c, _ in space.dropped}
    assert any(n == "conv2" and c == "sep" and "weight" in why for n, c, why in space.dropped)
    assert "not offered: conv2 w0.75 (RuntimeError" in space.describe()
    rng = np.random.default_rng(0)
    for _ in range(10):
        assert space.build(space.sample(rng))(torch.randn(3, 1, 40)).shape == (3, 10)


class LSTMUser(nn.Module):
    """Unpacks an LSTM's (h, c) and uses the last hidden state: the GRU swap must keep working."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv1d(1, 16, 5, padding=2)
        self.lstm = nn.LSTM(16, 24, batch_first=True)
        self.enc = nn.TransformerEncoderLayer(24, 4, dim_feedforward=48, batch_first=True)
        self.fc = nn.Linear(24, 10)

    def forward(self, x):
        out, (h, c) = self.lstm(F.relu(self.conv(x)).transpose(1, 2))
        return self.fc(self.enc(out).mean(1) + h[-1])


def test_recurrent_and_transformer_slots():
    space = spaces.from_model(LSTMUser(), torch.randn(2, 1, 40))
    slots = {s.name: s for s in space.slots}
    assert {v["cell"] for v in slots["lstm"].values} == {"lstm", "gru"}
    assert {v["heads"] for v in slots["enc"].values} == {1, 2, 3, 4, 6}
    assert {v["ffn"] for v in slots["enc"].values} == {0.5, 1.0, 2.0}
    arch = space.parse("lstm=gru,h0.5|enc=heads2,ff2.0")
    net = space.build(arch)
    assert isinstance(net.lstm.rnn, nn.GRU) and net.lstm.rnn.hidden_size == 12
    assert net.enc.self_attn.num_heads == 2 and net.enc.linear1.out_features == 96
    assert net.enc.self_attn.embed_dim == 12 and net.fc.in_features == 12
    assert net(torch.randn(2, 1, 40)).shape == (2, 10)


def test_attention_heads_divide_every_width():
    space = spaces.from_model(models.ConvGRUAttn1d(), torch.randn(2, 1, 40))
    rng = np.random.default_rng(0)
    for _ in range(8):
        net = space.build(space.sample(rng)).eval()
        assert net.attn.embed_dim % net.attn.num_heads == 0
        with torch.no_grad():
            assert net(torch.randn(2, 1, 40)).shape == (2, 10)


# --------------------------------------------------------------------------------------------
# choices=, errors
# --------------------------------------------------------------------------------------------
def test_choices_restrict_extend_and_freeze():
    space = spaces.from_model(models.SmallCNN1d(), torch.randn(2, 1, 40), choices={
        "Conv1d": {"kernel": [3, 9], "width": [0.5, 1.0], "separable": False},
        "features.0": None,
        "classifier.1": {"width": [0.25, 2.0]},
    })
    slots = {s.name: s for s in space.slots}
    assert "features.0" not in slots
    assert {v["kernel"] for v in slots["features.3"].values if "kernel" in v} == {3, 9}
    assert {v["width"] for v in slots["features.3"].values if "width" in v} == {0.5, 1.0}
    assert not any(v.get("sep") for v in slots["features.3"].values)
    assert {v["width"] for v in slots["classifier.1"].values} == {0.25, 1.0, 2.0}
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert space.build(space.sample(rng))(torch.randn(2, 1, 40)).shape == (2, 10)


def test_a_layer_name_wins_over_its_type():
    space = spaces.from_model(models.SmallCNN1d(), torch.randn(2, 1, 40), choices={
        "Conv1d": None, "Linear": None, "features.3": {"kernel": [5]}})
    assert [s.name for s in space.slots] == ["features.3"]
    assert space.slots[0].labels == ("k3", "k5")


@pytest.mark.parametrize("choices, error, fragment", [
    ({"features.99": {"width": [0.5]}}, UnknownNameError, "features.0"),
    ({"features.1": {"width": [0.5]}}, InvalidParameterError, "BatchNorm1d"),
    ({"Conv1d": {"kernal": [3]}}, UnknownNameError, "kernel"),
    ({"Conv1d": {"kernel": [4]}}, InvalidParameterError, "odd"),
    ({"Linear": {"width": [0]}}, InvalidParameterError, "multipliers"),
    ({"Conv1d": [3, 5]}, InvalidParameterError, "dict of options"),
    ([("Conv1d", {})], InvalidParameterError, "dict mapping"),
])
def test_bad_choices(choices, error, fragment):
    with pytest.raises(error, match=fragment):
        spaces.from_model(models.SmallCNN1d(), torch.randn(2, 1, 40), choices=choices)


def test_bad_heads_name_the_valid_divisors():
    with pytest.raises(InvalidParameterError, match="do not divide.*1, 2, 4, 8"):
        spaces.from_model(models.ConvGRUAttn1d(), torch.randn(2, 1, 40),
                          choices={"attn": {"heads": [3]}})


def test_parse_errors_name_the_slot_and_choices():
    space = spaces.from_model(models.SmallCNN1d(), torch.randn(2, 1, 40))
    with pytest.raises(InvalidArchitectureError, match=r"features\.3.*k3,w0\.5"):
        space.parse("features.3=k4")
    with pytest.raises(InvalidArchitectureError, match=r"Unknown slot 'features\.4'.*features\.3"):
        space.parse("features.4=k3,w1.0")
    with pytest.raises(InvalidArchitectureError, match="slot=choice"):
        space.parse("features.3")
    with pytest.raises(InvalidArchitectureError, match="twice"):
        space.parse("features.3=k3,w1.0|features.3=k5,w1.0")
    # dimensions in any order, missing slots keep the original choice
    assert space.parse("features.3=sep,w0.5,k5") == space.parse(
        "features.0=k5,w1.0|features.3=k5,w0.5,sep|features.7=k3,w1.0|classifier.1=w1.0")


def test_build_checks_classes_and_input_shape():
    space = spaces.from_model(models.SmallCNN1d(), torch.randn(2, 1, 40))
    with pytest.raises(InvalidParameterError, match="10 outputs; num_classes=5"):
        space.build(space.default_arch(), 5, (1, 40))
    with pytest.raises(InvalidParameterError, match=r"\(1, 40\); input_shape=\(1, 64\)"):
        space.build(space.default_arch(), 10, (1, 64))
    with pytest.raises(InvalidParameterError, match="no build options"):
        space.build(space.default_arch(), C=4)


class Branchy(nn.Module):
    """Control flow on the input's shape: torch.fx cannot trace it, yet for one input shape the
    network is fixed (a branch on the input's values is refused: see below)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv1d(1, 8, 3, padding=1)
        self.conv2 = nn.Conv1d(8, 8, 3, padding=1)
        self.head = nn.Linear(8 * 40, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        if x.shape[-1] > 1:
            x = F.relu(self.conv2(x))
        return self.head(x.flatten(1))


def test_untraceable_model_falls_back_on_the_module_tree():
    space = spaces.from_model(Branchy(), torch.randn(2, 1, 40))
    assert space.trace_mode == "modules" and "TraceError" in space.trace_error
    assert [s.name for s in space.slots] == ["conv1", "conv2"]
    g = space.to_graph(space.default_arch())
    assert g.edge_index.tolist() == [[0, 1, 2], [1, 2, 3]]
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert space.build(space.sample(rng))(torch.randn(2, 1, 40)).shape == (2, 10)


class Broken(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(7, 10)

    def forward(self, x):
        return self.fc(x)


def test_models_without_a_space_are_named_in_the_error():
    with pytest.raises(InvalidParameterError, match="Broken cannot be run on the example input"):
        spaces.from_model(Broken(), torch.randn(2, 1, 40))
    with pytest.raises(InvalidParameterError, match="Flatten has no layer .* looked for Conv1d"):
        spaces.from_model(nn.Flatten(), torch.randn(2, 10))
    with pytest.raises(InvalidParameterError, match="Sequential has no layer with a choice left"):
        spaces.from_model(nn.Sequential(nn.Flatten(), nn.Linear(40, 10)), torch.randn(2, 1, 40))
    with pytest.raises(InvalidParameterError, match="torch.nn.Module"):
        spaces.from_model("resnet18", torch.randn(2, 3, 32, 32))
    assert issubclass(InvalidParameterError, PredNASError)


# --------------------------------------------------------------------------------------------
# the rest of prednas on a generated space
# --------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cnn_space():
    return spaces.from_model(models.SmallCNN1d(), torch.randn(2, 1, 40))


def test_proxies_and_rank_work_on_a_generated_space(cnn_space):
    import predictors
    import prednas
    import proxies

    space = cnn_space
    x, y = torch.randn(8, 1, 40), torch.randint(0, 10, (8,))
    scores = proxies.score_arch(space, str(space.default_arch()), x, y,
                                names=["synflow", "nwot", "params"], device="cpu")
    assert all(np.isfinite(v) for v in scores.values())
    assert scores["params"] == n_params(models.SmallCNN1d())
    rng = np.random.default_rng(0)
    archs = [space.sample(rng) for _ in range(30)]
    pipe = predictors.FeaturePipeline(space, "path")
    target = space.to_vectors(archs, "path")[:, -3:].sum(1)  # relative widths of the last slots
    from sklearn.linear_model import Ridge

    est = Ridge().fit(pipe.transform(archs), target)
    ranked = prednas.rank(archs, space, est, pipeline=pipe)
    assert len(ranked) == 30 and ranked[0][1] >= ranked[-1][1]
    gnn = predictors.GNNPredictor(n_steps=3, random_state=0).fit(pipe.graphs(archs), target)
    assert np.isfinite(gnn.predict(pipe.graphs(archs[:5]))).all()


def test_tiny_search_on_a_generated_space(cnn_space, tmp_path):
    import prednas
    from prednas.search import MutationMutator, PredictorFilter, TrainingEvaluator

    cap = n_params(models.SmallCNN1d())
    res = prednas.Search(
        cnn_space, task="mnist1d", task_options={"num_samples": 400}, budget=2, per_round=2,
        evaluator=TrainingEvaluator(steps=3, device="cpu", max_params=cap),
        mutator=MutationMutator(parents=2, mutations=20),
        filter=PredictorFilter(proxy_table=None, min_fit=2), max_params=cap, ensembler=False,
        baseline=True, device="cpu", seed=0, run_dir=tmp_path / "run").run()
    assert len(res.records) == 2
    assert all(r.ok and r.space == cnn_space.name for r in res.records)
    assert all(r.get("params") <= cap for r in res.records)
    assert res.baseline.arch == str(cnn_space.default_arch()) and res.baseline.ok
    assert res.baseline.get("params") == cap
    assert str(cnn_space.parse(res.best_arch)) == res.best_arch
    from prednas.errors import RunDirectoryError

    with pytest.raises(RunDirectoryError, match="space="):
        prednas.Search.resume(tmp_path / "run")
    again = prednas.Search.resume(tmp_path / "run", space=cnn_space, budget=3).run()
    assert len(again.records) == 3


def test_example_script_runs_tiny(monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "models", models)
    monkeypatch.setattr(sys, "argv", ["search_my_model.py", "--tiny"])
    runpy.run_path(str(EXAMPLES / "search_my_model.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "from_model:SmallCNN1d:" in out and "best: features.0=" in out


def test_example_is_five_lines_or_fewer():
    text = (EXAMPLES / "search_my_model.py").read_text()
    body = text.split("what a user writes")[1].splitlines()[1:]
    assert 0 < len([line for line in body if line.strip()]) <= 5


# -- networks from_model must refuse (issue 21) -------------------------------------------------
class ValueBranch(nn.Module):
    """The reproduction of issue 21: which layers run depends on the activations' values."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(1, 8, 3, padding=1)
        self.c2 = nn.Conv1d(8, 8, 3, padding=1)
        self.head = nn.Linear(8 * 40, 10)

    def forward(self, x):
        h = F.relu(self.c1(x))
        if h.mean() > 0.1:
            h = self.c2(h)
        return self.head(h.flatten(1))


class ItemLoop(nn.Module):
    """A Python value read from an activation decides how often a layer runs."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(1, 8, 3, padding=1)
        self.head = nn.Linear(8 * 40, 10)

    def forward(self, x):
        h = self.c1(x)
        for _ in range(1 + int(h.abs().max().item() > 1e9)):
            h = torch.tanh(h)
        return self.head(h.flatten(1))


class ConstantBranch(nn.Module):
    """A branch on a constant buffer and on shapes: the same for every input, so accepted."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv1d(1, 8, 3, padding=1)
        self.head = nn.Linear(8 * 40, 10)
        self.register_buffer("scale", torch.tensor(2.0))

    def forward(self, x):
        h = self.c1(x)
        if float(self.scale) > 1 and h.shape[1] == 8:
            h = h * self.scale
        return self.head(h.flatten(1))


@pytest.mark.parametrize("net, layer, code", [(ValueBranch, "'c1'", "h.mean() > 0.1"),
                                              (ItemLoop, "'c1'", ".item()")])
def test_input_dependent_control_flow_is_refused_naming_the_layer(net, layer, code):
    with pytest.raises(InvalidParameterError) as info:
        spaces.from_model(net(), torch.randn(2, 1, 40))
    msg = str(info.value)
    assert "\n" not in msg and net.__name__ in msg and layer in msg and code in msg
    assert "input-dependent control flow" in msg


def test_control_flow_found_by_running_other_inputs(monkeypatch):
    """Without the conversion watch (a decision it cannot see), comparing the layers run for
    other inputs still finds the branch and names where the paths part."""
    import spaces._graph_flow as flow

    monkeypatch.setattr(flow, "_TO_PYTHON", frozenset())
    torch.manual_seed(0)
    net = ValueBranch()
    with torch.no_grad():  # the example takes the branch; zeros (bias 0) do not
        net.c1.bias.zero_()
        net.c1.weight.abs_()
    with pytest.raises(InvalidParameterError, match=r"after 'c1'.*'c2'.*'head'"):
        spaces.from_model(net, torch.rand(2, 1, 40) + 1)


def test_value_independent_branches_are_accepted():
    space = spaces.from_model(ConstantBranch(), torch.randn(2, 1, 40))
    assert [s.name for s in space.slots] == ["c1"]


def test_a_network_whose_parameters_are_all_frozen_is_refused():
    net = models.SmallCNN1d()
    for p in net.parameters():
        p.requires_grad_(False)
    with pytest.raises(InvalidParameterError, match="SmallCNN1d is frozen") as info:
        spaces.from_model(net, torch.randn(2, 1, 40))
    assert "\n" not in str(info.value)
    for p in net.classifier.parameters():  # a frozen part beside trainable layers is fine
        p.requires_grad_(True)
    assert spaces.from_model(net, torch.randn(2, 1, 40)).slots
