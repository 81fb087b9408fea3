"""REST API views of the ML domain: one view per operation."""
