"""The demo: CIFAR-10 classification in plain numpy, fed by the tinytorch data pipeline."""
