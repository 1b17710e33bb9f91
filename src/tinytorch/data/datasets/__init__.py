"""The datasets stage of the data flow."""
