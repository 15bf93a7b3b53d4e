"""The model zoo: a versioned manifest of models built in code, carried by wheels, or given by the user."""
