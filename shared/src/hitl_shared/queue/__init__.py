from hitl_shared.queue.base import Queue

__all__ = ["Queue"]
