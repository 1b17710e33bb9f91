"""The sampling stage of the data flow."""
