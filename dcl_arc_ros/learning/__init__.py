"""Training, torch only: networks, losses, trainers, checkpoints that carry their config, export and the experiments."""
