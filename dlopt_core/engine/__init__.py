"""The training loop (an iterator of records), its step seam and its stopwatch."""
