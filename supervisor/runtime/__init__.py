"""What everything runs on: the clock and its steps, the timers, the mailboxes' threads."""
