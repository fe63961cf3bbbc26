"""Running the study: the notebooks' setup and steps, estimates, the training launcher, the campaign, the report run, and the command line."""
