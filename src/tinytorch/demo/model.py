"""Small classifiers in plain numpy with hand-written gradients, and SGD with momentum.

Shapes: inputs ``x`` are ``(N, D)`` float32 (images flattened), labels ``y`` are ``(N,)``
int64 class indices, logits are ``(N, K)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

__all__ = ["MLP", "SGD", "SoftmaxRegression", "cross_entropy"]

Array = NDArray[Any]


def cross_entropy(logits: Array, y: NDArray[np.int64]) -> tuple[float, Array]:
    """Mean softmax cross-entropy and its gradient with respect to ``logits``."""
    shifted = logits - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    probs = exp / exp.sum(axis=1, keepdims=True)
    n = len(y)
    loss = float(-np.log(probs[np.arange(n), y] + 1e-12).mean())
    grad = probs
    grad[np.arange(n), y] -= 1
    return loss, grad / n


@dataclass
class SoftmaxRegression:
    """``logits = x @ W + b``: a linear classifier."""

    inputs: int
    classes: int
    seed: int = 0
    dtype: Any = np.float32
    params: dict[str, Array] = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        scale = 1.0 / np.sqrt(self.inputs)
        self.params = {
            "W": (rng.standard_normal((self.inputs, self.classes)) * scale).astype(self.dtype),
            "b": np.zeros(self.classes, dtype=self.dtype),
        }

    def forward(self, x: Array) -> tuple[Array, Any]:
        return x @ self.params["W"] + self.params["b"], x

    def backward(self, grad: Array, cache: Any) -> dict[str, Array]:
        x = cache
        return {"W": x.T @ grad, "b": grad.sum(axis=0)}


@dataclass
class MLP:
    """``logits = relu(x @ W1 + b1) @ W2 + b2``: one hidden layer, He-initialized."""

    inputs: int
    hidden: int
    classes: int
    seed: int = 0
    dtype: Any = np.float32
    params: dict[str, Array] = field(init=False)

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.params = {
            "W1": (rng.standard_normal((self.inputs, self.hidden)) * np.sqrt(2 / self.inputs)).astype(
                self.dtype
            ),
            "b1": np.zeros(self.hidden, dtype=self.dtype),
            "W2": (rng.standard_normal((self.hidden, self.classes)) * np.sqrt(1 / self.hidden)).astype(
                self.dtype
            ),
            "b2": np.zeros(self.classes, dtype=self.dtype),
        }

    def forward(self, x: Array) -> tuple[Array, Any]:
        p = self.params
        pre = x @ p["W1"] + p["b1"]
        h = np.maximum(pre, 0)
        return h @ p["W2"] + p["b2"], (x, pre, h)

    def backward(self, grad: Array, cache: Any) -> dict[str, Array]:
        x, pre, h = cache
        p = self.params
        grad_h = grad @ p["W2"].T
        grad_h[pre <= 0] = 0
        return {
            "W2": h.T @ grad,
            "b2": grad.sum(axis=0),
            "W1": x.T @ grad_h,
            "b1": grad_h.sum(axis=0),
        }


@dataclass
class SGD:
    """SGD with momentum and L2 weight decay (on weights, not biases)."""

    params: dict[str, Array]
    lr: float
    momentum: float = 0.9
    weight_decay: float = 5e-4
    velocity: dict[str, Array] = field(init=False)

    def __post_init__(self) -> None:
        self.velocity = {k: np.zeros_like(v) for k, v in self.params.items()}

    def step(self, grads: dict[str, Array]) -> None:
        for name, g in grads.items():
            if self.weight_decay and name.startswith("W"):
                g = g + self.weight_decay * self.params[name]
            v = self.velocity[name]
            v *= self.momentum
            v -= self.lr * g
            self.params[name] += v
