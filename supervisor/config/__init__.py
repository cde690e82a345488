"""What operators write: the policy model and its loader, schema, trust and reload."""
