"""The commands' workflows (train, cv, tune, lr-find, audit, features, fit-features): each ties the layers below into one run."""
