"""Trust the explanations: metrics read from the model, the data and attribution tables."""
