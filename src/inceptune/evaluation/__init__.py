"""Evaluation: metrics (scikit-learn), the logistic-regression baseline, plots (matplotlib) and the HTML report."""
