"""The state file, its lock and the operator's command queue."""
