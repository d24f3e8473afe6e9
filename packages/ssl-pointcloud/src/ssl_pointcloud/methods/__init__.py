"""Self-supervised recipes for point clouds, one file per recipe (shared code in :mod:`.common`)."""
