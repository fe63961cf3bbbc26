"""The networks, their training recipes, and the registry that names each model of the study once."""
