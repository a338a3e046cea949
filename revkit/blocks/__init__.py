"""revkit.blocks"""
