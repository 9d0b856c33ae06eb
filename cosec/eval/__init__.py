"""Evaluation: DisCo-protocol metrics, backbone weights lookup, split evaluator and reports."""
