"""LSTM autoencoder: layers and forward only (device, seed and paths come from the caller)."""

from __future__ import annotations

import torch
from torch import nn


class LSTMAutoencoder(nn.Module):
    """Encoder LSTM -> latent vector -> decoder LSTM -> linear.

    Input and output: (batch, window_len, n_channels), scaled values.
    """

    def __init__(
        self, n_channels: int, hidden_size: int = 64, latent_size: int = 16, num_layers: int = 1, dropout: float = 0.0
    ) -> None:
        super().__init__()
        lstm_dropout = dropout if num_layers > 1 else 0.0
        self.encoder = nn.LSTM(n_channels, hidden_size, num_layers, batch_first=True, dropout=lstm_dropout)
        self.to_latent = nn.Linear(hidden_size, latent_size)
        self.decoder = nn.LSTM(latent_size, hidden_size, num_layers, batch_first=True, dropout=lstm_dropout)
        self.to_output = nn.Linear(hidden_size, n_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.encoder(x)
        latent = self.to_latent(h[-1])  # (batch, latent)
        repeated = latent.unsqueeze(1).expand(-1, x.shape[1], -1)
        decoded, _ = self.decoder(repeated)
        out: torch.Tensor = self.to_output(decoded)
        return out
