import numpy as np
import pytest

from tinytorch.demo.model import MLP, SGD, SoftmaxRegression, cross_entropy


def numeric_gradient(f, x, eps=1e-6):
    grad = np.zeros_like(x)
    for i in np.ndindex(x.shape):
        old = x[i]
        x[i] = old + eps
        up = f()
        x[i] = old - eps
        down = f()
        x[i] = old
        grad[i] = (up - down) / (2 * eps)
    return grad


@pytest.mark.parametrize(
    "make",
    [lambda: SoftmaxRegression(5, 3, dtype=np.float64), lambda: MLP(5, 4, 3, dtype=np.float64)],
)
def test_gradients_match_finite_differences(make):
    model = make()
    rng = np.random.default_rng(0)
    x = rng.normal(size=(6, 5))
    y = rng.integers(0, 3, size=6)

    def loss():
        return cross_entropy(model.forward(x)[0], y)[0]

    logits, cache = model.forward(x)
    _, grad = cross_entropy(logits, y)
    analytic = model.backward(grad, cache)
    for name, param in model.params.items():
        np.testing.assert_allclose(analytic[name], numeric_gradient(loss, param), rtol=1e-5, atol=1e-7)


def test_cross_entropy_of_uniform_logits_is_log_k():
    loss, _ = cross_entropy(np.zeros((4, 10)), np.arange(4))
    assert loss == pytest.approx(np.log(10))


def test_sgd_reduces_the_loss():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(64, 8)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64)
    model = MLP(8, 16, 2)
    opt = SGD(model.params, lr=0.1)
    first = None
    for _ in range(50):
        logits, cache = model.forward(x)
        loss, grad = cross_entropy(logits, y)
        first = first if first is not None else loss
        opt.step(model.backward(grad, cache))
    assert loss < first / 3
