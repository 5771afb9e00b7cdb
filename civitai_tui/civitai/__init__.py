"""The CivitAI side: API client, target parsing, file selection, folder layouts."""
