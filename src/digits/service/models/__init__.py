"""What is loaded and how it gets there: the registry of loaded versions, the volume watcher
that feeds it, and the listeners that act on loads and unloads."""
