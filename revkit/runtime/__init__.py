"""Process-level helpers that training, evaluation and the run layer share: the torch device,
seeding and random states, and atomic file writes. They know nothing of specs, models or runs."""
