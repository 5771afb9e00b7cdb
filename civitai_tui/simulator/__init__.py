"""A local CivitAI stand-in (API origin + storage origin) with fault knobs."""
