"""What the agent says: the board of rows, metrics, log lines, sd_notify, notifications."""
