"""The PyTorch bridge: datasets, samplers, models, training and model evaluation (torch imported only here)."""
