"""revkit.eval"""
