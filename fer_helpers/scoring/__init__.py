"""Numbers from predictions: bootstrap intervals and tests, classification metrics, a model's runs summarised over seeds and ensembled, and the labels against the FER+ crowd."""
