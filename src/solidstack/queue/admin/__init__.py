"""Operating the queue from outside a worker: inspection for people, actions on jobs and queue
pauses (retention stays at solidstack.queue.retention: recurring.yml names it).
"""
