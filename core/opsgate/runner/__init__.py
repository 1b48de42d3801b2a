"""The agent runner: claims queued tasks, lays out work dirs, starts and supervises harness processes."""
