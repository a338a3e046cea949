"""revkit.spec"""
