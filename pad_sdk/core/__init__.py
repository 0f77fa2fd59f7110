"""The PAD algorithm core: networks, augmentation, scoring, scheduling, experts, matching, evaluation.

Nothing here knows about storage, Ray or reports; runtimes call these functions.
"""
