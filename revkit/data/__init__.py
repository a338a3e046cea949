"""revkit.data"""
