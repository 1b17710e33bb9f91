"""Train a small MLP with JAX, fed by the tinytorch data pipeline.

numpy batches go to JAX with jax.device_put (on the CPU backend this can share the buffer).

    pip install jax
    python examples/train_jax.py --synthetic --epochs 1   # no download needed
    python examples/train_jax.py --root ./data            # real CIFAR-10
"""

from __future__ import annotations

import argparse
import itertools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from tinytorch import (
    CIFAR10Dataset,
    Compose,
    DataLoader,
    Dataset,
    Normalize,
    Normalizer,
    RandomHorizontalFlip,
    TensorDataset,
)
from tinytorch.demo.synthetic import synthetic_cifar

Params = list[tuple[jax.Array, jax.Array]]


def init(key: jax.Array, sizes: list[int]) -> Params:
    params = []
    for fan_in, fan_out in itertools.pairwise(sizes):
        key, sub = jax.random.split(key)
        params.append((jax.random.normal(sub, (fan_in, fan_out)) * jnp.sqrt(2 / fan_in), jnp.zeros(fan_out)))
    return params


def forward(params: Params, x: jax.Array) -> jax.Array:
    for w, b in params[:-1]:
        x = jax.nn.relu(x @ w + b)
    w, b = params[-1]
    return x @ w + b


def loss_fn(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    logits = forward(params, x)
    return -jnp.mean(jax.nn.log_softmax(logits)[jnp.arange(len(y)), y])


def sgd_step(params: Params, x: jax.Array, y: jax.Array) -> Params:
    grads = jax.grad(loss_fn)(params, x, y)
    return [(w - 0.01 * gw, b - 0.01 * gb) for (w, b), (gw, gb) in zip(params, grads, strict=True)]


step = jax.jit(sgd_step)  # compiled once per input shape


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--root", default="./data")
    parser.add_argument("--synthetic", action="store_true", help="generated data, not CIFAR-10")
    parser.add_argument("--epochs", type=int, default=2)
    args = parser.parse_args()
    tag = "[synthetic] " if args.synthetic else ""
    train: Dataset[Any]
    test: Dataset[Any]
    if args.synthetic:
        train, test = (
            TensorDataset(*synthetic_cifar(5000, seed=1)),
            TensorDataset(*synthetic_cifar(1000, seed=2)),
        )
    else:
        train, test = CIFAR10Dataset(args.root, train=True), CIFAR10Dataset(args.root, train=False)
    norm = Normalizer(mode="per_channel").fit(DataLoader(train, batch_size=4096))
    normalize = Normalize(norm.mean, norm.std)
    loader = DataLoader(
        train,
        batch_size=128,
        shuffle=True,
        seed=0,
        drop_last=True,
        batch_transform=Compose([RandomHorizontalFlip(), normalize]),
    )
    params = init(jax.random.PRNGKey(0), [3072, 256, 10])
    for epoch in range(args.epochs):
        for images, labels in loader:
            params = step(params, jax.device_put(images.reshape(len(images), -1)), jax.device_put(labels))
        correct = sum(
            int((np.asarray(forward(params, x.reshape(len(x), -1))).argmax(1) == y).sum())
            for x, y in DataLoader(test, batch_size=1000, batch_transform=normalize)
        )
        print(f"{tag}epoch {epoch + 1}: test accuracy {correct / len(test):.1%}")


if __name__ == "__main__":
    main()
