"""The pure core: value objects, validation policy, planning, errors.

Nothing here imports ``azure``, reads the environment or does I/O.
"""
