"""Step 2: vectors and labels in, a score per sample out: how likely its given label is wrong (the ranker, its signals, the noise prior)."""
