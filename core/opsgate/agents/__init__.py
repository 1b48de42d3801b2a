"""Agents and their tasks: spawning, control, runtime configuration, read APIs."""
