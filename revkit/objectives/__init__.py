"""revkit.objectives"""
