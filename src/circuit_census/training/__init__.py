"""Training: settings (TrainConfig), batched PyTorch models, the training loop, model files."""
