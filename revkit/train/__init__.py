"""revkit.train"""
