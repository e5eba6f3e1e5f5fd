"""The logistic-regression machinery the scores rest on: standardisation, the fit, projection, local sensitivity, coresets, folds, out-of-fold probabilities."""
