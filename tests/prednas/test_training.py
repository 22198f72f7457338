from __future__ import annotations

import math

import pytest
import torch

import prednas
from prednas.errors import InvalidParameterError


def test_train_is_reproducible_for_a_seed(synthetic_task):
    kw = dict(epochs=2, batch_size=32, seed=7, device="cpu")
    a = prednas.train("blocks1d", "conv3:16|gru:16", synthetic_task, **kw)
    b = prednas.train("blocks1d", "conv3:16|gru:16", synthetic_task, **kw)
    assert a.ok and b.ok
    assert a.loss_curve == b.loss_curve and a.val_acc == b.val_acc and a.test_acc == b.test_acc
    assert a.params > 0 and a.flops > 0 and a.wall_time > 0 and len(a.loss_curve) == 2
    assert all(math.isfinite(v) for v in a.loss_curve)


def test_train_with_dropout_is_reproducible_whatever_the_global_rng(synthetic_task):
    """Dropout masks come from a seeded stream, not from whatever the global RNG holds."""
    kw = dict(steps=12, batch_size=32, seed=3, device="cpu", build_kwargs=dict(dropout=0.5))
    torch.manual_seed(1)
    a = prednas.train("blocks1d", "conv3:16|mlp:16", synthetic_task, **kw)
    torch.manual_seed(2)
    torch.rand(100)
    b = prednas.train("blocks1d", "conv3:16|mlp:16", synthetic_task, **kw)
    assert a.ok and b.ok and a.loss_curve == b.loss_curve and a.val_loss == b.val_loss


def test_train_leaves_global_rng_alone(synthetic_task):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    prednas.train("blocks1d", "mlp:16", synthetic_task, steps=3, device="cpu")
    assert torch.equal(torch.rand(3), expected)


def test_train_learns_the_synthetic_task(synthetic_task):
    rec = prednas.train("blocks1d", "conv5:32|conv5:32", synthetic_task, epochs=8, batch_size=32,
                        lr=1e-2, seed=0, device="cpu")
    assert rec.val_acc > 100 / synthetic_task.num_classes + 25


def test_train_nb201_on_images(synthetic_image_task):
    rec = prednas.train("nb201", "|nor_conv_3x3~0|+|skip_connect~0|none~1|+|none~0|none~1|avg_pool_3x3~2|",
                        synthetic_image_task, steps=3, batch_size=16, device="cpu",
                        build_kwargs=dict(C=4, N=1))
    assert rec.ok and rec.steps == 3 and rec.model is not None


def test_divergence_is_recorded_not_raised(synthetic_task):
    import dataclasses

    poisoned = dataclasses.replace(synthetic_task, x_train=synthetic_task.x_train * float("nan"))
    rec = prednas.train("blocks1d", "mlp:16", poisoned, steps=5, device="cpu")
    assert rec.status == "diverged" and "non-finite" in rec.reason and math.isnan(rec.test_acc)


def test_weight_inheritance_copies_matching_layers(synthetic_task):
    parent = prednas.train("blocks1d", "conv3:16|conv3:16", synthetic_task, steps=2, device="cpu")
    child = prednas.train("blocks1d", "conv3:16|conv3:16|mlp:32", synthetic_task, steps=1,
                          device="cpu", parent_state=parent.model.state_dict())
    assert child.inherited >= 6  # both conv blocks (weight + BN tensors)


def test_bad_parameters(synthetic_task):
    with pytest.raises(InvalidParameterError, match="'batch_size' parameter of train"):
        prednas.train("blocks1d", "mlp:16", synthetic_task, batch_size=0)
    with pytest.raises(InvalidParameterError, match="auto"):
        prednas.train("blocks1d", "mlp:16", synthetic_task, steps=1, device="tpu")
    with pytest.raises(InvalidParameterError, match="'lr' parameter"):
        prednas.train("blocks1d", "mlp:16", synthetic_task, steps=1, lr=float("nan"))


def test_learning_curve_points_do_not_change_the_training(synthetic_task):
    plain = prednas.train("blocks1d", "conv3:16|mlp:16", synthetic_task, steps=12, seed=1,
                          device="cpu")
    rec = prednas.train("blocks1d", "conv3:16|mlp:16", synthetic_task, steps=12, seed=1,
                        device="cpu", curve_every=5, curve_size=20)
    assert rec.val_acc == plain.val_acc and rec.test_acc == plain.test_acc
    c = rec.curve
    assert c["step"] == [5, 10, 12]  # every 5 steps and the last
    assert all(len(c[k]) == 3 for k in ("val_acc", "val_loss", "train_loss", "seconds", "cpu"))
    assert all(0 <= a <= 100 for a in c["val_acc"]) and all(x > 0 for x in c["train_loss"])
    assert c["seconds"] == sorted(c["seconds"]) and c["seconds"][-1] <= rec.wall_time
    assert 0 < rec.curve_seconds < rec.wall_time and 0 < rec.eval_seconds < rec.wall_time
    assert rec.cpu_time > 0 and not plain.curve


def test_a_diverging_training_keeps_its_curve_until_it_diverged(synthetic_task):
    rec = prednas.train("blocks1d", "conv3:16", synthetic_task, steps=20, lr=1e30, seed=0,
                        device="cpu", curve_every=2)
    assert rec.status == "diverged" and "non-finite" in rec.reason
    assert len(rec.curve["step"]) < 10


def test_curve_parameters_are_checked(synthetic_task):
    with pytest.raises(InvalidParameterError, match="curve_every"):
        prednas.train("blocks1d", "conv3:16", synthetic_task, steps=4, curve_every=0)


def test_a_paused_training_continues_as_if_never_paused(synthetic_task, tmp_path):
    kw = dict(steps=23, seed=3, device="cpu", curve_every=5, curve_size=20, batch_size=16)
    whole = prednas.train("blocks1d", "conv3:16|mlp:16", synthetic_task, **kw)
    ck = tmp_path / "ck.pt"
    first = prednas.train("blocks1d", "conv3:16|mlp:16", synthetic_task, stop_at=10,
                          checkpoint=ck, **kw)
    assert first.paused and first.steps == 10 and math.isnan(first.test_acc)
    assert first.val_acc == whole.curve["val_acc"][1]  # the curve's point at step 10
    second = prednas.train("blocks1d", "conv3:16|mlp:16", synthetic_task, stop_at=15,
                           checkpoint=ck, resume=ck, **kw)  # a second rung, mid-epoch
    assert second.paused and second.steps == 15
    last = prednas.train("blocks1d", "conv3:16|mlp:16", synthetic_task, resume=ck, **kw)
    assert not last.paused and last.steps == 23
    assert last.val_acc == whole.val_acc and last.test_acc == whole.test_acc
    assert last.loss_curve == whole.loss_curve
    for key in ("step", "val_acc", "val_loss", "train_loss"):
        assert last.curve[key] == whole.curve[key]
    assert last.curve["seconds"] == sorted(last.curve["seconds"])


def test_a_checkpoint_of_another_training_is_refused(synthetic_task, tmp_path):
    from prednas.errors import IncompatibleArtifactError

    ck = tmp_path / "ck.pt"
    prednas.train("blocks1d", "conv3:16", synthetic_task, steps=12, stop_at=4, checkpoint=ck,
                  device="cpu")
    with pytest.raises(IncompatibleArtifactError, match="arch"):
        prednas.train("blocks1d", "mlp:16", synthetic_task, steps=12, resume=ck, device="cpu")
    ck.write_bytes(b"not a checkpoint")
    with pytest.raises(IncompatibleArtifactError, match="cannot be read"):
        prednas.train("blocks1d", "conv3:16", synthetic_task, steps=12, resume=ck, device="cpu")
