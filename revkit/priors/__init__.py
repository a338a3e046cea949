"""revkit.priors"""
