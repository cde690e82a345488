"""The agent's own checks (tcp, http, exec) and their schedule."""
