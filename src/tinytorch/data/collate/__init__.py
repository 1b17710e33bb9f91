"""The collate stage of the data flow."""
