"""Transfer learning: source and target tasks, the arms (how a pretrained model is fine-tuned), LoRA."""
