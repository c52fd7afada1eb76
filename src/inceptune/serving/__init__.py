"""`serve`: a run's model behind HTTP (app.py builds the app; routes/ holds one module of routes per protocol)."""
