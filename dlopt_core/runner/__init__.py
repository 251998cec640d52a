"""Background work: a keyed job registry over thread or process launchers."""
