"""Which process owns which flow: flow deltas, local ends, the owner cache and discovery."""
