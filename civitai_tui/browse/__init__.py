"""Browse: searching CivitAI, model details, previews and the library's update check."""
