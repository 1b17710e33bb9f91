"""The seed's import path: ``tinytorch.core.dataloader``."""
