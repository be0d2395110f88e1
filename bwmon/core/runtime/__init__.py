"""Process-wide tuning: heap trimming, GC pauses, fast constructors, start-up, tick pacing."""
