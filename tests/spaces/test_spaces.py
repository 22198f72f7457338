"""Contract tests run over every registered space."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Data

import spaces
from prednas.errors import InvalidArchitectureError, UnknownNameError

ALL = spaces.list_spaces()
SMALL_BUILD = {"nb201": dict(input_shape=(3, 8, 8), C=4, N=1), "blocks1d": dict(input_shape=(1, 40))}


def test_registry_lists_both_spaces():
    assert {"nb201", "blocks1d"} <= set(ALL)


def test_unknown_space_lists_valid_names():
    with pytest.raises(UnknownNameError) as err:
        spaces.get("nb20l")
    assert "nb201" in str(err.value) and "blocks1d" in str(err.value)


@pytest.mark.parametrize("name", ALL)
def test_roundtrip_1000_samples(name):
    space = spaces.get(name)
    rng = np.random.default_rng(0)
    for _ in range(1000):
        arch = space.sample(rng)
        text = str(arch)
        again = space.parse(text)
        assert again == arch and hash(again) == hash(arch) and str(again) == text
        g = space.to_graph(arch)
        assert isinstance(g, Data)
        assert g.x.shape[1] >= len(space.node_types)
        assert g.x[:, :len(space.node_types)].sum(1).eq(1).all()  # one-hot node types
        if g.edge_index.numel():
            assert int(g.edge_index.max()) < g.num_nodes


@pytest.mark.parametrize("name", ALL)
def test_mutate_gives_valid_different_arch(name):
    space = spaces.get(name)
    rng = np.random.default_rng(1)
    for _ in range(1000):
        arch = space.sample(rng)
        child = space.mutate(arch, rng)
        assert child != arch
        assert space.parse(str(child)) == child


@pytest.mark.parametrize("name", ALL)
def test_neighbours_are_one_edit_away_and_distinct(name):
    space = spaces.get(name)
    arch = space.sample(np.random.default_rng(2))
    nbrs = space.neighbours(arch)
    assert nbrs and arch not in nbrs and len(set(nbrs)) == len(nbrs)
    rng = np.random.default_rng(3)
    assert all(space.mutate(arch, rng) in set(nbrs) for _ in range(50))


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("encoding", ["onehot", "path"])
def test_vectors_have_fixed_length(name, encoding):
    space = spaces.get(name)
    rng = np.random.default_rng(4)
    vecs = space.to_vectors([space.sample(rng) for _ in range(50)], encoding)
    assert vecs.ndim == 2 and vecs.shape[0] == 50 and np.isfinite(vecs).all()


@pytest.mark.parametrize("name", ALL)
def test_unknown_encoding(name):
    with pytest.raises(UnknownNameError, match="onehot"):
        spaces.get(name).to_vector(spaces.get(name).default_arch(), "adjacency")


@pytest.mark.parametrize("name", ALL)
def test_built_models_run_forward_and_backward(name):
    space = spaces.get(name)
    rng = np.random.default_rng(5)
    kw = dict(SMALL_BUILD[name])
    shape = kw.pop("input_shape")
    for _ in range(12):
        arch = space.sample(rng)
        model = space.build(arch, num_classes=5, input_shape=shape, **kw)
        out = model(torch.randn(3, *shape))
        assert out.shape == (3, 5)
        out.sum().backward()
        assert any(p.grad is not None for p in model.parameters()) or not list(model.parameters())


def test_nb201_default_network_is_the_benchmark_skeleton():
    space = spaces.get("nb201")
    model = space.build(space.default_arch())  # C=16, N=5, CIFAR shape
    out = model(torch.randn(2, 3, 32, 32))
    assert out.shape == (2, 10)
    assert len(model.cells) == 3 * 5 + 2  # 15 cells + 2 reduction blocks


def test_blocks1d_every_op_builds_and_trains_a_step():
    space = spaces.get("blocks1d")
    for op in space.ops:
        arch = space.parse(f"conv3:16|{op}:32|{op}:32@0")
        model = space.build(arch, 10, (1, 40))
        loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 1, 40)), torch.arange(4))
        loss.backward()
        assert torch.isfinite(loss)


def test_nb201_enumerates_15625_distinct_archs_all_in_benchmark():
    from prednas import benchmarks

    space = spaces.get("nb201")
    strings = [str(a) for a in space.enumerate()]
    assert len(space) == 15625 == len(strings) == len(set(strings))
    bench = benchmarks.load("nb201")
    assert set(strings) == set(bench.arch_strings())


def test_nb201_string_format_matches_natsbench():
    text = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
    arch = spaces.get("nb201").parse(text)
    assert str(arch) == text
    assert arch.op(2, 1) == "avg_pool_3x3" and arch.op(3, 2) == "skip_connect"


def test_nb201_canonical_merges_isomorphic_cells():
    space = spaces.get("nb201")
    a = space.parse("|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|avg_pool_3x3~1|nor_conv_1x1~2|")
    b = space.parse("|skip_connect~0|+|nor_conv_3x3~0|none~1|+|none~0|nor_conv_1x1~1|avg_pool_3x3~2|")
    assert a != b and space.canonical(a) == space.canonical(b)
    # an edge into a dead end is pruned
    c = space.parse("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|skip_connect~0|none~1|none~2|")
    assert space.canonical(c).ops == ("none",) * 3 + ("skip_connect", "none", "none")
    n_unique = len({space.canonical(x) for x in space.enumerate()})
    assert 6000 < n_unique < 15625  # NB201 reports 6,466 unique cells up to isomorphism
    for x in space.enumerate():
        if hash(x) % 97 == 0:
            assert space.canonical(space.canonical(x)) == space.canonical(x)


@pytest.mark.parametrize("text, fragment", [
    ("", "expected 3 node groups"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|", "expected 3 node groups"),
    ("|conv_5x5~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|", "nor_conv_3x3"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|none~4|+|none~0|none~1|none~2|", "out of range"),
    ("|nor_conv_3x3~0|+|nor_conv_3x3~0|+|none~0|none~1|none~2|", "exactly 2"),
    ("nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|none~0|none~1|none~2|", "Malformed"),
])
def test_nb201_bad_strings(text, fragment):
    with pytest.raises(InvalidArchitectureError, match=fragment):
        spaces.get("nb201").parse(text)


@pytest.mark.parametrize("text, fragment", [
    ("", "Malformed"),
    ("conv4:32", "conv3"),          # unknown op lists valid choices, closest first
    ("conv3:33", "valid choices: 16, 32, 64, 128"),
    ("conv3:32|gru:32@1", "out of range"),
    ("conv3:32|" * 8 + "mlp:16", "valid: 1 to 8"),
    ("conv3-32", "Malformed block"),
])
def test_blocks1d_bad_strings(text, fragment):
    with pytest.raises(InvalidArchitectureError, match=fragment):
        spaces.get("blocks1d").parse(text)


def test_coerce_rejects_foreign_objects():
    nb = spaces.get("nb201")
    with pytest.raises(InvalidArchitectureError):
        nb.coerce(spaces.get("blocks1d").default_arch())
