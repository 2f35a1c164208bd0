"""Training on Ray Train: configs, samples from the dataset, steps, loops and drivers."""
