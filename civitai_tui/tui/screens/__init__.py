"""The three main screens (one per mode) and the modal dialogs."""
