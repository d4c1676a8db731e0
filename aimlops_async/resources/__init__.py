"""The resource groups of the API: one module per group, one method per endpoint."""
