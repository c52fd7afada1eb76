"""Evaluation: metrics (scikit-learn), plots (matplotlib) and the HTML report."""
