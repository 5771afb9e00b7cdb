"""Fleet mode: many engines working from one queue held in a Valkey/Redis server (docs/fleet.md)."""
