"""Built-in runner plugins, one folder per runtime: ``__init__`` declares (light), ``runner`` runs (heavy)."""
