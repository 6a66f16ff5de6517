"""Training: data (InterAct release layout, synthetic corpus), torch models, training loops, evaluation."""
