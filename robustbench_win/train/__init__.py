"""Training: hyper-parameters, the loop, batches, speed options, the checkpoint store, weights files."""
