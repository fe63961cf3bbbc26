"""Facial emotion recognition on FER-2013: data, features, models, training, evaluation, explanation."""
