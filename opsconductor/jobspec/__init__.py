"""The job document: its schema, validation, templating and the compiler to a run plan."""
