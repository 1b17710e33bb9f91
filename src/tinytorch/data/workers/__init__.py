"""The workers stage of the data flow."""
