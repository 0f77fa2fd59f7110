"""pad-sdk: dataset distillation with PAD."""
