"""Training, evaluation, the model bundle, the artifact store and promotion."""
