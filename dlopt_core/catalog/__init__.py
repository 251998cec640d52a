"""Extension points: each module a dict of frozen specs with hyperparameters. Adding one is one entry."""
