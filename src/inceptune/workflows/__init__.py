"""The commands' runs (train, cv, tune, lr-find, audit, features, fit-features), each over the layers below."""
