"""Scoring a fitted head on a split: classification metrics and the evaluation record (test split only).

Shared by the evaluate stage and the sweep; imports no stage.
"""
