"""deletion-monitoring: exporters and tooling for the account-deletion endpoint."""

__version__ = "0.1.0"
