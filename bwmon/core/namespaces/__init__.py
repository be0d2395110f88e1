"""Every network namespace on the host: found, followed, named, measured."""
