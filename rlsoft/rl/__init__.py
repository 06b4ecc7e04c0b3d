"""Reinforcement-learning plumbing shared by every agent: environments rlsoft ships."""
