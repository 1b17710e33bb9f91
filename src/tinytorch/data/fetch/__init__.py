"""The fetch stage of the data flow."""
