"""Measurements of a trained model besides attacks: spectral leakage and shift consistency."""
