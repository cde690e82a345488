"""The engine as the agent sees it: the Docker adapter, the live view, Compose, the
engine's health, and how Docker's states read.
"""
