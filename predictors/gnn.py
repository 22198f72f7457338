"""A GIN-style graph neural network predictor (PyTorch Geometric) with global features."""

from __future__ import annotations

import contextlib
import logging

import numpy as np
import torch
from torch import nn

from predictors.base import BasePredictor, _is_graph, check_targets, register_predictor
from prednas.errors import InvalidParameterError, check_param
from prednas.utils import make_rng, resolve_device, torch_seed

__all__ = ["GNNPredictor"]

log = logging.getLogger(__name__)


class _GraphSet:
    """Many small graphs concatenated once, so that mini-batches are gathered with tensor ops."""

    def __init__(self, graphs, u: np.ndarray):
        xs, eis, node_graph, edge_graph = [], [], [], []
        offset = 0
        for k, g in enumerate(graphs):
            n = int(g.num_nodes)
            xs.append(g.x.float())
            eis.append(g.edge_index.long() + offset)
            node_graph.append(torch.full((n,), k, dtype=torch.long))
            edge_graph.append(torch.full((g.edge_index.shape[1],), k, dtype=torch.long))
            offset += n
        self.x = torch.cat(xs)
        self.edge_index = torch.cat(eis, dim=1) if eis else torch.zeros((2, 0), dtype=torch.long)
        self.node_graph = torch.cat(node_graph)
        self.edge_graph = torch.cat(edge_graph)
        self.u = torch.as_tensor(u, dtype=torch.float32)
        self.n = len(graphs)

    def batch(self, sel: torch.Tensor):
        """``(x, edge_index, batch, u)`` of the graphs ``sel`` (in that order)."""
        pos = torch.full((self.n,), -1, dtype=torch.long)
        pos[sel] = torch.arange(len(sel))
        node_pos = pos[self.node_graph]
        keep = node_pos >= 0
        # order nodes by their graph's position in sel, so pooling outputs follow sel's order
        nodes = torch.nonzero(keep, as_tuple=True)[0]
        order = torch.argsort(node_pos[nodes], stable=True)
        nodes = nodes[order]
        new_id = torch.full((self.x.shape[0],), -1, dtype=torch.long)
        new_id[nodes] = torch.arange(len(nodes))
        ekeep = pos[self.edge_graph] >= 0
        ei = new_id[self.edge_index[:, ekeep]]
        return self.x[nodes], ei, node_pos[nodes], self.u[sel]


@contextlib.contextmanager
def _threads(n: int):
    """Use ``n`` torch CPU threads inside the block, restoring the previous count."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class _GINNet(nn.Module):
    def __init__(self, node_dim: int, global_dim: int, hidden: int, layers: int, dropout: float):
        super().__init__()
        from torch_geometric.nn import GINConv

        self.embed = nn.Linear(node_dim, hidden)

        def mlp():
            return nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))

        # messages along the data flow and against it (the DAG is directed)
        self.fwd = nn.ModuleList(GINConv(mlp(), train_eps=True) for _ in range(layers))
        self.bwd = nn.ModuleList(GINConv(mlp(), train_eps=True) for _ in range(layers))
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))
        self.global_dim = global_dim
        self.u_mlp = (nn.Sequential(nn.Linear(global_dim, hidden), nn.ReLU(),
                                    nn.Linear(hidden, hidden)) if global_dim else None)
        head_in = 2 * hidden + (hidden if global_dim else 0)
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(head_in, hidden), nn.ReLU(),
                                  nn.Linear(hidden, 1))

    def forward(self, x, edge_index, batch, u, num_graphs: int):
        from torch_geometric.nn import global_add_pool, global_mean_pool

        h = torch.relu(self.embed(x))
        rev = edge_index.flip(0)
        for f, b, norm in zip(self.fwd, self.bwd, self.norms):
            h = norm(h + torch.relu(f(h, edge_index) + b(h, rev)))
        pooled = [global_mean_pool(h, batch, num_graphs), global_add_pool(h, batch, num_graphs) / 8]
        if self.u_mlp is not None:
            pooled.append(self.u_mlp(u))
        return self.head(torch.cat(pooled, dim=1)).squeeze(1)


@register_predictor("gnn")
class GNNPredictor(BasePredictor):
    """GIN encoder over ``space.to_graph(arch)`` plus the graph's global features ``data.u``.

    Inputs are lists of ``torch_geometric.data.Data`` (as made by ``FeaturePipeline.graphs``).
    Global features are made robust (signed ``log1p`` for heavy-tailed columns), NaN is imputed
    with the training medians, and the result is standardised. Training minimises
    ``mse_weight * MSE + rank_weight * pairwise logistic ranking loss`` on standardised targets,
    with Adam and a cosine learning-rate schedule. Fitting is deterministic for an integer
    ``random_state`` (the global torch RNG is restored afterwards).

    Args:
        hidden: width of node embeddings.
        layers: message-passing rounds (each along and against the edges).
        n_steps: optimiser steps.
        batch_size: graphs per step.
        lr: Adam learning rate.
        weight_decay: Adam weight decay.
        rank_weight: weight of the pairwise ranking loss.
        mse_weight: weight of the regression loss.
        dropout: dropout before the head.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``.
        n_jobs: CPU threads torch uses while fitting/predicting (restored afterwards); tiny
            graphs run fastest on one thread, especially on a shared machine.
        random_state: seed.
    """

    needs_graphs = True

    def __init__(self, hidden: int = 48, layers: int = 3, n_steps: int = 300, batch_size: int = 64,
                 lr: float = 3e-3, weight_decay: float = 1e-4, rank_weight: float = 1.0,
                 mse_weight: float = 1.0, dropout: float = 0.0, device: str = "cpu",
                 n_jobs: int = 1, random_state: int | None = None):
        self.hidden = hidden
        self.layers = layers
        self.n_steps = n_steps
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.rank_weight = rank_weight
        self.mse_weight = mse_weight
        self.dropout = dropout
        self.device = device
        self.n_jobs = n_jobs
        self.random_state = random_state

    def _validate_params(self) -> None:
        name = type(self).__name__
        check_param(name, "hidden", self.hidden, kind=int, low=1)
        check_param(name, "layers", self.layers, kind=int, low=1)
        check_param(name, "n_steps", self.n_steps, kind=int, low=1)
        check_param(name, "batch_size", self.batch_size, kind=int, low=2)
        check_param(name, "lr", self.lr, kind=(int, float), low=0, low_open=True)
        check_param(name, "weight_decay", self.weight_decay, kind=(int, float), low=0)
        check_param(name, "rank_weight", self.rank_weight, kind=(int, float), low=0)
        check_param(name, "mse_weight", self.mse_weight, kind=(int, float), low=0)
        check_param(name, "dropout", self.dropout, kind=(int, float), low=0, high=1)
        check_param(name, "n_jobs", self.n_jobs, kind=int, low=1)
        if self.rank_weight == 0 and self.mse_weight == 0:
            raise InvalidParameterError(
                "GNNPredictor: rank_weight and mse_weight cannot both be 0")

    # -- global features ----------------------------------------------------------------------
    @staticmethod
    def _check_graphs(X) -> list:
        if isinstance(X, np.ndarray) or not hasattr(X, "__len__"):
            raise InvalidParameterError(
                "GNNPredictor takes a list of torch_geometric Data graphs (FeaturePipeline.graphs),"
                f" got {type(X).__name__}")
        graphs = list(X)
        if not graphs:
            raise InvalidParameterError("GNNPredictor: 0 graphs given; need at least 1")
        for g in graphs:
            if not _is_graph(g):
                raise InvalidParameterError(
                    f"GNNPredictor: expected torch_geometric Data graphs, got {type(g).__name__}")
        return graphs

    @staticmethod
    def _raw_u(graphs) -> np.ndarray:
        rows = []
        for g in graphs:
            u = getattr(g, "u", None)
            rows.append(np.zeros(0) if u is None else
                        np.asarray(u.detach().cpu() if torch.is_tensor(u) else u,
                                   dtype=np.float64).reshape(-1))
        widths = {len(r) for r in rows}
        if len(widths) != 1:
            raise InvalidParameterError(
                f"GNNPredictor: graphs carry global features of different lengths {sorted(widths)}")
        u = np.stack(rows) if rows[0].size else np.zeros((len(rows), 0))
        return np.where(np.isinf(u), np.nan, u)

    def _transform_u(self, u: np.ndarray) -> np.ndarray:
        if u.shape[1] == 0:
            return u.astype(np.float32)
        u = np.where(self.u_log_, np.sign(u) * np.log1p(np.abs(u)), u)
        u = np.where(np.isnan(u), self.u_median_, u)
        return np.clip((u - self.u_mean_) / self.u_std_, -6, 6).astype(np.float32)

    # -- fit / predict ------------------------------------------------------------------------
    def fit(self, X, y) -> GNNPredictor:
        """Fit on a list of graphs ``X`` and targets ``y``."""
        self._validate_params()
        graphs = self._check_graphs(X)
        y = check_targets("GNNPredictor", y, len(graphs))
        dims = {int(g.x.shape[1]) for g in graphs}
        if len(dims) != 1:
            raise InvalidParameterError(f"GNNPredictor: node features of different widths {dims}")
        u = self._raw_u(graphs)
        with np.errstate(all="ignore"):
            finite_max = np.nanmax(np.abs(u), axis=0) if u.shape[0] else np.zeros(u.shape[1])
            self.u_log_ = np.nan_to_num(finite_max, nan=0.0) > 1e3
            ul = np.where(self.u_log_, np.sign(u) * np.log1p(np.abs(u)), u)
            med = np.nanmedian(ul, axis=0) if u.shape[1] else np.zeros(0)
        self.u_median_ = np.nan_to_num(med, nan=0.0)
        ul = np.where(np.isnan(ul), self.u_median_, ul)
        self.u_mean_ = ul.mean(axis=0)
        std = ul.std(axis=0)
        self.u_std_ = np.where(std > 1e-12, std, 1.0)
        self.node_dim_ = dims.pop()
        self.global_dim_ = u.shape[1]
        self.y_mean_, self.y_scale_ = float(y.mean()), float(y.std()) or 1.0
        yt = torch.as_tensor((y - self.y_mean_) / self.y_scale_, dtype=torch.float32)
        data = _GraphSet(graphs, self._transform_u(u))
        device = resolve_device(self.device)
        rng = make_rng(self.random_state)
        seed = int(rng.integers(2**31 - 1))
        n = len(graphs)
        bs = min(self.batch_size, n)
        with torch_seed(seed, device), _threads(self.n_jobs):
            net = _GINNet(self.node_dim_, self.global_dim_, self.hidden, self.layers,
                          float(self.dropout)).to(device)
            opt = torch.optim.Adam(net.parameters(), lr=float(self.lr),
                                   weight_decay=float(self.weight_decay))
            sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=self.n_steps)
            net.train()
            perm, pos = rng.permutation(n), 0
            self.loss_curve_ = []
            for _ in range(self.n_steps):
                if pos + bs > n:
                    perm, pos = rng.permutation(n), 0
                sel = torch.as_tensor(perm[pos:pos + bs], dtype=torch.long)
                pos += bs
                x, ei, b, ub = (t.to(device) for t in data.batch(sel))
                target = yt[sel].to(device)
                pred = net(x, ei, b, ub, len(sel))
                loss = self.mse_weight * torch.mean((pred - target) ** 2)
                if self.rank_weight > 0 and len(sel) > 1:
                    dp = pred[:, None] - pred[None, :]
                    sign = torch.sign(target[:, None] - target[None, :])
                    mask = sign != 0
                    if mask.any():
                        loss = loss + self.rank_weight * nn.functional.softplus(
                            -sign[mask] * dp[mask]).mean()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                self.loss_curve_.append(float(loss.detach()))
        net.eval()
        self.module_ = net.cpu()
        self.n_features_in_ = self.node_dim_
        self.is_fitted_ = True
        return self

    @torch.no_grad()
    def predict(self, X, batch_size: int = 4096) -> np.ndarray:
        """Predicted targets for a list of graphs (higher is better)."""
        self._check_fitted()
        graphs = self._check_graphs(X)
        u = self._raw_u(graphs)
        if u.shape[1] != self.global_dim_:
            raise InvalidParameterError(
                f"GNNPredictor: graphs carry {u.shape[1]} global features, but the predictor was "
                f"fitted with {self.global_dim_}")
        if int(graphs[0].x.shape[1]) != self.node_dim_:
            raise InvalidParameterError(
                f"GNNPredictor: node features have width {int(graphs[0].x.shape[1])}, fitted "
                f"with {self.node_dim_}")
        ut = self._transform_u(u)
        out = []
        with _threads(self.n_jobs):
            self._predict_chunks(graphs, ut, batch_size, out)
        pred = np.concatenate(out).astype(np.float64)
        return pred * self.y_scale_ + self.y_mean_

    def _predict_chunks(self, graphs, ut, batch_size, out) -> None:
        for start in range(0, len(graphs), batch_size):
            chunk = graphs[start:start + batch_size]
            data = _GraphSet(chunk, ut[start:start + batch_size])
            sel = torch.arange(len(chunk))
            x, ei, b, ub = data.batch(sel)
            out.append(self.module_(x, ei, b, ub, len(chunk)).numpy())

    # -- predictor files: the network as a safetensors state dict, never a pickle -------------
    _model_attr = "module_"

    def _dump_model(self, model) -> tuple[bytes, str, dict]:
        from safetensors.torch import save as save_tensors

        tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
        return save_tensors(tensors), "safetensors", {}

    def _load_model(self, blob: bytes, facts: dict):
        from safetensors.torch import load as load_tensors

        tensors = load_tensors(blob)
        with torch_seed(0):  # the initial weights are overwritten; keep the global RNG as it was
            net = _GINNet(int(self.node_dim_), int(self.global_dim_), self.hidden, self.layers,
                          float(self.dropout))
        net.load_state_dict(tensors, strict=True)
        return net.eval()
