"""The loader stage of the data flow."""
