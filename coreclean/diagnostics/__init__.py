"""Reports about a dataset as a whole: which class to clean first, how much label noise hurts a model, and figures."""
