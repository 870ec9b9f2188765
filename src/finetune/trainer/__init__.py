"""What the Trainer gets beside the module: callbacks of the loop (exact resume) and the compatibility layer."""
