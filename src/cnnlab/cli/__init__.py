"""The ``cnnlab`` command line: one module per command."""
