"""Noise schedules, solvers, consistency parametrisation and samplers."""
