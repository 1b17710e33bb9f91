"""The transforms stage of the data flow."""
