"""The command line: its parser and commands, and the status screen."""
