"""Reference optimizers written from the textbook equations, to check and explain the torch ones.

Plain tensor ops under ``torch.no_grad()``, no weight decay, no fused or foreach kernels: slow, but each
``_update`` is the equation in its docstring line by line. ``tests/test_optimizers.py`` checks each against its
torch counterpart step by step, and checks the differences documented here.
Notation: η learning rate, g_t = ∂L/∂θ at step t (t = 1, 2, ...), all operations elementwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch.optim import Optimizer


class _Reference(Optimizer):
    """Loop over parameters with a gradient and hand each to ``_update`` with its state and group."""

    def __init__(self, params: Iterable[Any], lr: float, **defaults: Any) -> None:
        if lr < 0.0:
            raise ValueError(f"lr must be >= 0, got {lr}")
        super().__init__(params, {"lr": lr, **defaults})

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        """One update of every parameter that has a gradient.

        Args:
            closure: re-evaluates the model and returns the loss (optional, as in torch).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for param in group["params"]:
                if param.grad is not None:
                    self._update(param, param.grad, self.state[param], group)
        return loss

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        raise NotImplementedError


class GradientDescent(_Reference):
    """Gradient descent: θ_{t+1} = θ_t − η g_t.

    Equal to ``torch.optim.SGD(params, lr, momentum=0)`` (with torch's defaults dampening=0, weight_decay=0,
    nesterov=False). Torch's default lr is 1e-3; torch's ``weight_decay`` λ would add λθ_t to g_t (L2), left out here.

    Args:
        params: parameters or parameter groups.
        lr: η.
    """

    def __init__(self, params: Iterable[Any], lr: float) -> None:
        super().__init__(params, lr)

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        param -= group["lr"] * grad


class Momentum(_Reference):
    """Heavy-ball momentum: v_t = μ v_{t−1} + g_t, θ_{t+1} = θ_t − η v_t, with v_0 = 0.

    Equal to ``torch.optim.SGD(params, lr, momentum=μ)``. Torch starts its buffer at b_1 = g_1
    (``buf = grad.detach().clone()`` on the first step in torch/optim/sgd.py), which is what v_0 = 0 gives here;
    later it computes b_t = μ b_{t−1} + (1 − τ) g_t, the same with its default dampening τ = 0. With τ > 0 the two
    differ: torch does not dampen the first step. Torch's default momentum is 0 (plain SGD); μ = 0.9 here.

    Differences from other textbook forms: this puts η outside the velocity. Sutskever et al. (2013) and some
    frameworks use v_t = μ v_{t−1} + η g_t, θ_{t+1} = θ_t − v_t (torch's SGD docstring notes the difference); the
    two give the same steps while η is constant and differ once a scheduler changes η. ``nesterov=True`` in torch
    steps along g_t + μ b_t instead of b_t.

    Args:
        params: parameters or parameter groups.
        lr: η.
        momentum: μ in [0, 1).
    """

    def __init__(self, params: Iterable[Any], lr: float, momentum: float = 0.9) -> None:
        super().__init__(params, lr, momentum=momentum)

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["velocity"] = torch.zeros_like(param)
        velocity = state["velocity"]
        velocity.copy_(group["momentum"] * velocity + grad)
        param -= group["lr"] * velocity


class RMSProp(_Reference):
    """RMSProp: s_t = ρ s_{t−1} + (1 − ρ) g_t², θ_{t+1} = θ_t − η g_t / (√s_t + ε), with s_0 = 0.

    Equal to ``torch.optim.RMSprop(params, lr, alpha=ρ, eps=ε)`` (momentum=0, centered=False). In
    torch/optim/rmsprop.py torch also adds ε after the square root: ``square_avg.mul_(alpha).addcmul_(grad, grad,
    value=1 - alpha)``, ``avg = square_avg.sqrt()``, ``avg = avg.add_(eps)``, ``param.addcdiv_(grad, avg,
    value=-lr)``; its docstring notes that TensorFlow puts ε inside the root instead.

    Defaults differ: torch's are lr=1e-2, alpha=0.99, eps=1e-8. Hinton's lecture 6e, which introduced RMSProp
    and which torch's docstring cites, averages with ρ = 0.9, the value most textbooks quote. The two differ from
    the first step: s_1 = (1 − ρ) g_1², so θ moves by ≈ η/√(1 − ρ) per weight, 10η with 0.99 and 3.2η with 0.9.

    Args:
        params: parameters or parameter groups.
        lr: η.
        rho: ρ, decay of the squared-gradient average (torch's ``alpha``).
        eps: ε, added to √s_t.
    """

    def __init__(self, params: Iterable[Any], lr: float, rho: float = 0.99, eps: float = 1e-8) -> None:
        super().__init__(params, lr, rho=rho, eps=eps)

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state["square_avg"] = torch.zeros_like(param)
        rho, square_avg = group["rho"], state["square_avg"]
        square_avg.copy_(rho * square_avg + (1 - rho) * grad * grad)
        param -= group["lr"] * grad / (square_avg.sqrt() + group["eps"])


class Adam(_Reference):
    """Adam (Kingma & Ba, Algorithm 1), with m_0 = v_0 = 0::

        m_t = β1 m_{t−1} + (1 − β1) g_t         v_t = β2 v_{t−1} + (1 − β2) g_t²
        m̂_t = m_t / (1 − β1^t)                  v̂_t = v_t / (1 − β2^t)
        θ_{t+1} = θ_t − η m̂_t / (√v̂_t + ε)

    Equal to ``torch.optim.Adam(params, lr, betas, eps)`` up to rounding. torch/optim/adam.py (single-tensor
    path) rearranges the same formula: ``exp_avg.lerp_(grad, 1 - beta1)`` (= β1 m + (1 − β1) g),
    ``step_size = lr / bias_correction1``, ``denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps)``,
    ``param.addcdiv_(exp_avg, denom, value=-step_size)``, i.e. θ − (η / (1 − β1^t)) m_t / (√v_t / √(1 − β2^t) + ε),
    which is algebraically the line above: ε is still added to √v̂_t. It is not the paper's "more efficient"
    form η_t = η √(1 − β2^t) / (1 − β1^t), θ − η_t m_t / (√v_t + ε̂), which equals this one only for
    ε̂ = ε √(1 − β2^t); with the same ε it steps differently while √v_t is not much larger than ε.

    Torch's defaults lr=1e-3, betas=(0.9, 0.999), eps=1e-8 are the paper's; conf/optimizer/ fine-tunes with η = 5e-5.
    Weight decay, left out here: ``Adam(weight_decay=λ)`` adds λθ to g_t before the moments (L2, so the decay is
    rescaled by 1/(√v̂_t + ε)), default λ = 0; ``AdamW`` multiplies θ by (1 − ηλ) before the update
    (``param.mul_(1 - lr * weight_decay)``, decoupled), default λ = 0.01.

    Args:
        params: parameters or parameter groups.
        lr: η.
        betas: (β1, β2), decays of the gradient and squared-gradient averages.
        eps: ε, added to √v̂_t.
    """

    def __init__(
        self, params: Iterable[Any], lr: float, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8
    ) -> None:
        super().__init__(params, lr, betas=(float(betas[0]), float(betas[1])), eps=eps)

    def _update(self, param: torch.Tensor, grad: torch.Tensor, state: dict[str, Any], group: dict[str, Any]) -> None:
        if not state:
            state.update(step=0, exp_avg=torch.zeros_like(param), exp_avg_sq=torch.zeros_like(param))
        beta1, beta2 = group["betas"]
        state["step"] += 1
        t, m, v = state["step"], state["exp_avg"], state["exp_avg_sq"]
        m.copy_(beta1 * m + (1 - beta1) * grad)
        v.copy_(beta2 * v + (1 - beta2) * grad * grad)
        m_hat = m / (1 - beta1**t)
        v_hat = v / (1 - beta2**t)
        param -= group["lr"] * m_hat / (v_hat.sqrt() + group["eps"])
