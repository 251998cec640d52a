"""Data a person brings: checked parsing of CSV, .npz and idx files, and the content-hashed store."""
