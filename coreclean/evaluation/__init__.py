"""How good is a model or a ranking? Held-out AUROC with intervals, and ranking metrics against known errors."""
