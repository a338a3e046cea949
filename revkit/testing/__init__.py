"""revkit.testing"""
