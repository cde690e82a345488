"""Acting: the heal runner and cycle, the journal of intents and its keeper, and the
steps on a service.
"""
