"""The queue's processes: supervisors, workers, dispatcher and scheduler, and how a claimed job
runs.
"""
