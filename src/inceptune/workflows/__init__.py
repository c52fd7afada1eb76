"""The commands' runs (train, cv, tune, lr-find, audit, features, fit-features, predict, demo), each over the
layers below."""
