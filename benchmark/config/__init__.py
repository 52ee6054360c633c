"""Run configuration as values: profiles, ``RunConfig`` and epsilon parsing; imports nothing else of ``benchmark``."""
