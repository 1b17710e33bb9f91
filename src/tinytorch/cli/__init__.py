"""The tinytorch-data command line."""
