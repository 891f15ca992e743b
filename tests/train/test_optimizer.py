"""The trainer's optimizer: AdamW with the fused update where the device has one, the same trajectory as torch's
reference loop implementation."""

import torch

from attnlab.train.loop import adamw


def test_fused_adamw_follows_the_reference_loop_with_both_weight_decay_groups():
    gen = torch.Generator().manual_seed(0)
    start = [torch.randn(5, 3, generator=gen), torch.randn(3, generator=gen)]
    grads = [[torch.randn(p.shape, generator=gen) for p in start] for _ in range(20)]

    def trajectory(make):
        ps = [p.clone().requires_grad_() for p in start]
        opt = make([{"params": [ps[0]], "weight_decay": 0.1}, {"params": [ps[1]], "weight_decay": 0.0}])
        for gs in grads:
            for p, g in zip(ps, gs):
                p.grad = g.clone()
            opt.step()
        return ps, opt

    ours, opt = trajectory(lambda groups: adamw(groups, lr=3e-2, betas=(0.9, 0.95)))
    ref, _ = trajectory(lambda groups: torch.optim.AdamW(groups, lr=3e-2, betas=(0.9, 0.95), foreach=False))
    assert opt.defaults["fused"] is True
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ours, ref))
    assert [g["weight_decay"] for g in opt.param_groups] == [0.1, 0.0]


def test_parameters_on_a_device_without_the_fused_update_take_the_loop():
    p = torch.nn.Parameter(torch.empty(3, device="meta"))
    assert not adamw([p], lr=1e-3).defaults["fused"]
