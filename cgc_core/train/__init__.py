"""Training: the trainer (Algorithm 1), densification, schedule, views, and the set-up from a
scene."""
