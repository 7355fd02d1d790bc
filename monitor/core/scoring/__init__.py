"""Scoring: the LSTM autoencoder, robust scaling, training, artifacts and the batch scorer."""
