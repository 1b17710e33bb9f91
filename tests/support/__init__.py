"""Test helpers: a local HTTP server and CIFAR files in the official layout."""
