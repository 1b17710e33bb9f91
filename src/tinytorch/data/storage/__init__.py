"""The storage stage of the data flow."""
