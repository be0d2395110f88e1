"""Alert rules over averaged rates, the monitor that feeds them, and the notifier."""
