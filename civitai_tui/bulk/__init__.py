"""The bulk download engine: jobs, the priority queue, the state machine, batch strategies."""
