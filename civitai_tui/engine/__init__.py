"""The engine process: wiring, the control API server and client, process management."""
